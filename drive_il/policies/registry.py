"""Model registry and model presets (``models/*.toml``).

``ARCHITECTURES`` maps an architecture name to its config dataclass, its ``nn.Module``
class and its default preprocessing:

=================  ==========================  ============================================
name               module                      paper
=================  ==========================  ============================================
``alvinn``         :class:`~.alvinn.Alvinn`    Pomerleau 1989 (30x32 blue band, 45 units)
``dave2``          :class:`~.dave2.Dave2`      Bojarski et al. 2016 (66x200 YUV, 1/r)
``dave2_branched`` :class:`~.dave2.Dave2Branched`  DAVE-2 trunk + Codevilla et al. 2018 branches
=================  ==========================  ============================================

A model preset is a TOML file, loaded strictly (:mod:`drive_il.config`)::

    name = "dave2"
    architecture = "dave2"          # a key of ARCHITECTURES

    [model]                         # the architecture's config dataclass
    activation = "relu"

    [preprocessing]                 # PreprocessConfig; missing keys: the architecture's default
    camera = "center"
    crop_top = 0.0
    color_space = "yuv"

    [output]                        # OutputConfig (drive_il.policies.presets); optional
    kind = "path"                   # "native" (1/r, direction units) or "path"
    path_distances = [1.0, 2.0, 5.0, 10.0]

    [augmentation]                  # AugmentConfig (drive_il.policies.presets)
    side_cameras = true

    [training]                      # TrainConfig (drive_il.policies.presets)
    batch_size = 64
    epochs = 10

A bare name (``"dave2"``) resolves to ``models/dave2.toml`` of the checkout, else to the
built-in defaults of the architecture of that name.

The ``[output]`` table applies to every architecture: without it (or with ``kind =
"native"``) the network predicts what its paper did; ``kind = "path"`` swaps the last
layer for a path head (:mod:`drive_il.policies.path`). A preset with the native output
serialises without the table (:meth:`ModelPreset.to_dict`), so 1/r checkpoints are
written exactly as before.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import from_dict, read_toml, to_dict
from ..errors import ConfigError, FieldError
from .alvinn import Alvinn, AlvinnConfig
from .dave2 import Dave2, Dave2Branched, Dave2BranchedConfig, Dave2Config
from .preprocessing import PreprocessConfig
from .presets import AugmentConfig, OutputConfig, TrainConfig

__all__ = [
    "ARCHITECTURES",
    "MODELS_DIR",
    "Architecture",
    "ModelPreset",
    "OutputConfig",
    "TrainConfig",
    "build_policy",
    "load_model_preset",
    "model_preset_from_dict",
    "resolve_model_preset",
]

#: Repository folder with the shipped model presets.
MODELS_DIR = Path(__file__).resolve().parent.parent.parent / "models"


@dataclass(frozen=True)
class Architecture:
    """One registered architecture.

    Attributes:
        name: registry key.
        config_cls: its config dataclass.
        module_cls: its ``nn.Module`` (constructor ``(config, input_shape)``).
        preprocessing: its default preprocessing (the paper's input).
        paper: citation.
    """

    name: str
    config_cls: type
    module_cls: type
    preprocessing: PreprocessConfig
    paper: str


ARCHITECTURES: dict[str, Architecture] = {
    "alvinn": Architecture(
        "alvinn", AlvinnConfig, Alvinn,
        PreprocessConfig(height=30, width=32, color_space="blue"),
        "Pomerleau 1989, ALVINN"),
    "dave2": Architecture(
        "dave2", Dave2Config, Dave2,
        PreprocessConfig(height=66, width=200, color_space="yuv"),
        "Bojarski et al. 2016, arXiv:1604.07316"),
    "dave2_branched": Architecture(
        "dave2_branched", Dave2BranchedConfig, Dave2Branched,
        PreprocessConfig(height=66, width=200, color_space="yuv"),
        "Bojarski et al. 2016 + Codevilla et al. 2018 (branched CIL)"),
}


#: The ``[output]`` keys of the speed head (drive_il.policies.speed).
_SPEED_KEYS = ("speed", "speed_measured_input", "speed_loss_weight", "speed_loss", "speed_quantile", "speed_scale")
#: The ``[output]`` keys of the obstacle-gap head.
_GAP_KEYS = ("obstacle_gap", "gap_range", "gap_loss_weight", "gap_stop_distance", "gap_deceleration", "gap_lights")
#: The ``[output]`` keys of the stop-reason head.
_REASON_KEYS = ("stop_reason_head", "stop_reason_loss_weight")


@dataclass(frozen=True)
class ModelPreset:
    """A complete model preset: architecture + preprocessing + augmentation + training.

    Attributes:
        name: preset name.
        architecture: key of :data:`ARCHITECTURES`.
        model: the architecture's config dataclass instance.
        preprocessing: input preprocessing.
        augmentation: training augmentation.
        training: hyper-parameters.
        source: the file it came from ("" if built in code).
        output: what the network predicts (``[output]``; default: the native output).
    """

    name: str
    architecture: str
    model: Any
    preprocessing: PreprocessConfig
    augmentation: AugmentConfig = field(default_factory=AugmentConfig)
    training: TrainConfig = field(default_factory=TrainConfig)
    source: str = ""
    output: OutputConfig = field(default_factory=OutputConfig)

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise FieldError("ModelPreset", "architecture",
                             f"expected one of {list(ARCHITECTURES)}, got {self.architecture!r}")
        if not isinstance(self.model, ARCHITECTURES[self.architecture].config_cls):
            raise FieldError("ModelPreset", "model", f"expected a {ARCHITECTURES[self.architecture].config_cls.__name__}, "
                             f"got {type(self.model).__name__}")
        if not isinstance(self.output, OutputConfig):
            raise FieldError("ModelPreset", "output", f"expected an OutputConfig, got {type(self.output).__name__}")

    def replace(self, **changes: Any) -> ModelPreset:
        """A copy with fields replaced."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/TOML-able dict (the inverse of :func:`model_preset_from_dict`);
        ``output`` only when it is not the native output (1/r presets and checkpoints
        serialise as before the path head existed), its speed-head keys only with a
        speed head (or values other than the defaults)."""
        d = {
            "name": self.name,
            "architecture": self.architecture,
            "model": to_dict(self.model),
            "preprocessing": to_dict(self.preprocessing),
            "augmentation": to_dict(self.augmentation),
            "training": to_dict(self.training),
        }
        if self.output != OutputConfig():
            out = to_dict(self.output)
            default = to_dict(OutputConfig())
            # without a speed (gap, stop-reason) head: written as before that head existed
            for on, keys in ((self.output.speed, _SPEED_KEYS), (self.output.obstacle_gap, _GAP_KEYS),
                             (self.output.stop_reason_head, _REASON_KEYS)):
                if not on:
                    for k in keys:
                        if out.get(k) == default[k]:
                            out.pop(k, None)
            d["output"] = out
        return d


def model_preset_from_dict(data: Mapping[str, Any], *, source: str = "<model>") -> ModelPreset:
    """Build a :class:`ModelPreset` strictly from a parsed TOML/JSON mapping.

    Raises:
        ConfigError: unknown architecture, unknown key, bad value (one line naming the
            source and the field).
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: top level: expected a table")
    known = {"name", "architecture", "model", "preprocessing", "augmentation", "training", "output"}
    for k in data:
        if k not in known:
            raise ConfigError(f"{source}: field '{k}': unknown key (known keys: {', '.join(sorted(known))})")
    arch_name = data.get("architecture")
    if arch_name not in ARCHITECTURES:
        raise ConfigError(f"{source}: field 'architecture': expected one of {list(ARCHITECTURES)}, "
                          f"got {arch_name!r}")
    arch = ARCHITECTURES[arch_name]
    name = data.get("name", arch_name)
    if not isinstance(name, str):
        raise ConfigError(f"{source}: field 'name': expected a string, got {name!r}")
    model = from_dict(arch.config_cls, data.get("model", {}), source=source, prefix="model.")
    pre_data = {**to_dict(arch.preprocessing), **dict(data.get("preprocessing", {}))} \
        if isinstance(data.get("preprocessing", {}), Mapping) else data.get("preprocessing")
    pre = from_dict(PreprocessConfig, pre_data, source=source, prefix="preprocessing.")
    aug = from_dict(AugmentConfig, data.get("augmentation", {}), source=source, prefix="augmentation.")
    tr = from_dict(TrainConfig, data.get("training", {}), source=source, prefix="training.")
    out = from_dict(OutputConfig, data.get("output", {}), source=source, prefix="output.")
    if arch_name == "alvinn" and pre.channels * pre.height * pre.width > 1_000_000:
        raise ConfigError(f"{source}: field 'preprocessing': ALVINN input too large "
                          f"({pre.height}x{pre.width}x{pre.channels})")
    return ModelPreset(name=name, architecture=arch_name, model=model, preprocessing=pre,
                       augmentation=aug, training=tr, source=source, output=out)


def resolve_model_preset(name_or_path: str | Path) -> Path | None:
    """The preset file for a name or path (``models/<name>.toml`` for a bare name), or
    None for a bare architecture name without a file."""
    p = Path(name_or_path)
    if p.exists():
        return p
    if p.suffix == "" and len(p.parts) == 1:
        cand = MODELS_DIR / f"{p}.toml"
        if cand.exists():
            return cand
        if str(p) in ARCHITECTURES:
            return None
    raise ConfigError(f"{p}: model preset not found (a TOML file, or one of "
                      f"{sorted(set(ARCHITECTURES) | {f.stem for f in MODELS_DIR.glob('*.toml')})})")


def load_model_preset(name_or_path: str | Path | ModelPreset) -> ModelPreset:
    """Load a model preset (path, name in ``models/``, or architecture name).

    Raises:
        ConfigError: file missing or invalid (one line).
    """
    if isinstance(name_or_path, ModelPreset):
        return name_or_path
    p = resolve_model_preset(name_or_path)
    if p is None:
        return model_preset_from_dict({"architecture": str(name_or_path)}, source=f"<built-in {name_or_path}>")
    return model_preset_from_dict(read_toml(p), source=str(p))


def build_policy(preset: ModelPreset):
    """A freshly initialised ``nn.Module`` for a preset (torch's default init, seeded by
    the caller through ``torch.manual_seed``)."""
    arch = ARCHITECTURES[preset.architecture]
    if preset.output.is_path or preset.output.speed:
        return arch.module_cls(preset.model, preset.preprocessing.shape, output=preset.output)
    return arch.module_cls(preset.model, preset.preprocessing.shape)
