"""Checkpoints that describe themselves, loaded without unpickling.

A checkpoint is a directory::

    CKPT/
      model.safetensors     the policy's weights (safetensors: tensors only, no code)
      config.json           format = "drive_il.checkpoint", format_version,
                            weights_sha256 (SHA-256 of model.safetensors,
                            checked on load; absent in older checkpoints),
                            architecture, preset (model config, preprocessing,
                            augmentation, training hyper-parameters; ``output``,
                            the path head's K distances and settings, only for a
                            path head: 1/r presets are written as before), vehicle
                            (wheelbase [m], max_steer_angle [rad]: the label
                            conversion 1/r <-> steer used in training), cameras (the
                            camera rig the model expects: name, width, height, fov_deg,
                            x, y, z, pitch_deg, yaw_deg), parameters, training info
                            (epoch, step, losses, seed, data directories), created,
                            drive_il_version
      optimizer.safetensors (``last`` checkpoints only) optimizer tensors, and
      trainer_state.json    the optimizer's non-tensor state and the loop position,
                            for ``--resume``

``model.safetensors`` is written with its header's metadata in sorted key order, so
identical weights give identical bytes (safetensors itself writes the metadata in hash
order, which differs from process to process).

Writing is all-or-nothing: the weights and the config go to temporary files first (a
full disk fails there, leaving the checkpoint already in the directory as it was), then
the old config is removed and both files are renamed into place.

A training run keeps ``RUN/best`` (lowest validation loss) and ``RUN/last``; passing
``RUN`` where a checkpoint is expected means ``RUN/best`` (``RUN/last`` when there is no
best). In the spirit of LeRobot (config JSON next to the weights) and DESIGN.md
("never a pickled object").

Every problem is a :class:`~drive_il.errors.CheckpointError` with one line naming the
path: not a checkpoint, another format or format version, another architecture than
expected, missing or corrupt weights (including weights whose SHA-256 differs from the
digest in ``config.json``), weights that do not fit the architecture, non-finite
(NaN/inf) weights, a checkpoint that cannot be written (disk full), or a camera rig the
model does not expect (:func:`check_camera_rig`).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, DriveILError

__all__ = [
    "CONFIG_NAME",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "WEIGHTS_NAME",
    "CheckpointInfo",
    "VehicleParams",
    "check_camera_rig",
    "load_checkpoint",
    "load_optimizer",
    "read_checkpoint_info",
    "resolve_checkpoint",
    "safetensors_bytes",
    "save_checkpoint",
    "save_optimizer",
]

FORMAT_NAME = "drive_il.checkpoint"
#: Version of the checkpoint layout written here (bump on incompatible change).
FORMAT_VERSION = 1
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
OPTIMIZER_NAME = "optimizer.safetensors"
TRAINER_STATE_NAME = "trainer_state.json"


@dataclass(frozen=True)
class VehicleParams:
    """The vehicle geometry used to convert 1/r <-> steer.

    Attributes:
        wheelbase: L [m].
        max_steer_angle: road-wheel angle at |steer| = 1 [rad].
    """

    wheelbase: float = 2.9
    max_steer_angle: float = math.radians(35.0)

    def to_dict(self) -> dict[str, float]:
        return {"wheelbase": self.wheelbase, "max_steer_angle": self.max_steer_angle}


@dataclass(frozen=True)
class CheckpointInfo:
    """What ``config.json`` says about a checkpoint.

    Attributes:
        path: the checkpoint directory.
        architecture: registry name.
        preset: the :class:`~drive_il.policies.registry.ModelPreset`.
        vehicle: label-conversion geometry.
        cameras: camera rig the model was trained with (dicts, see module docstring).
        format_version: layout version.
        parameters: trainable parameters.
        training: free-form training info (epoch, losses, seed, data dirs, ...).
        weights_sha256: SHA-256 (hex) of ``model.safetensors`` as saved, checked by
            :func:`load_checkpoint`; None for checkpoints saved before it was stored.
    """

    path: Path
    architecture: str
    preset: Any
    vehicle: VehicleParams
    cameras: tuple[dict, ...] = ()
    format_version: int = FORMAT_VERSION
    parameters: int = 0
    training: dict = field(default_factory=dict)
    weights_sha256: str | None = None

    @property
    def preprocessing(self):
        """The :class:`~drive_il.policies.preprocessing.PreprocessConfig`."""
        return self.preset.preprocessing

    @property
    def camera(self) -> dict | None:
        """The rig entry of the camera the model reads (None if not recorded)."""
        for c in self.cameras:
            if c.get("name") == self.preset.preprocessing.camera:
                return c
        return None


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint directory for ``path``: itself, or ``path/best``, ``path/last``.

    Raises:
        CheckpointError: nothing that looks like a checkpoint there.
    """
    p = Path(path)
    if p.is_file() and p.name in (WEIGHTS_NAME, CONFIG_NAME):
        p = p.parent
    if (p / CONFIG_NAME).exists():
        return p
    for sub in ("best", "last"):
        if (p / sub / CONFIG_NAME).exists():
            return p / sub
    if not p.exists():
        raise CheckpointError(f"{p}: checkpoint not found")
    raise CheckpointError(f"{p}: not a checkpoint (no {CONFIG_NAME}, nor best/ or last/ inside)")


def _oserror_text(e: OSError) -> str:
    return e.strerror or " ".join(str(e).split()) or type(e).__name__


def _write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (a temporary name; the caller renames it)."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()


def _discard(*paths: Path) -> None:
    for p in paths:
        try:
            p.unlink()
        except OSError:
            pass


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        _write_file(tmp, text.encode("utf-8"))
        os.replace(tmp, path)
    except OSError as e:
        _discard(tmp)
        raise CheckpointError(f"{path}: cannot write ({_oserror_text(e)})") from None


def safetensors_bytes(tensors: Mapping[str, Any], metadata: Mapping[str, str] | None = None) -> bytes:
    """The bytes of a safetensors file of ``tensors``, its metadata in sorted key order.

    ``safetensors`` serialises the metadata from a hash map, whose order changes from
    one process to the next; the header is re-written here with the same tensors and
    offsets and sorted metadata, so identical tensors give identical bytes.
    """
    from safetensors.torch import save

    raw = save(dict(tensors), metadata=dict(metadata) if metadata else None)
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out: dict[str, Any] = {}
    meta = header.pop("__metadata__", None)
    if meta is not None:
        out["__metadata__"] = dict(sorted(meta.items()))
    out.update(header)
    text = json.dumps(out, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the data start stays 8-byte aligned
    return struct.pack("<Q", len(text)) + text + raw[8 + n:]


def _non_finite(tensors: Mapping[str, Any]) -> str | None:
    """The name of the first floating-point tensor holding NaN or inf, else None."""
    import torch

    for k, v in tensors.items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            return k
    return None


def save_checkpoint(path: str | Path, policy, preset, *, vehicle: VehicleParams,
                    cameras: Iterable[Mapping[str, Any]] = (), training: Mapping[str, Any] | None = None) -> Path:
    """Write ``policy`` and its description to the directory ``path`` (created).

    The weights and the config (with the weights' SHA-256) are written to temporary
    names first; only when both are on disk is the old config removed and are both
    renamed into place, weights first, config last (a half-replaced checkpoint has no
    config and is not taken for one). A failed write (disk full) leaves the directory's
    checkpoint as it was.

    Args:
        path: checkpoint directory.
        policy: the ``nn.Module`` (from :func:`~drive_il.policies.registry.build_policy`).
        preset: its :class:`~drive_il.policies.registry.ModelPreset`.
        vehicle: the geometry used for the labels.
        cameras: the camera rig of the training data.
        training: extra JSON-able training info.

    Returns:
        The directory.

    Raises:
        CheckpointError: non-finite weights, or the files cannot be written (one line
            naming the directory and the system's reason, e.g. no space left).
    """
    from .. import __version__
    from .dave2 import count_parameters

    d = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in policy.state_dict().items()}
    bad = _non_finite(tensors)
    if bad is not None:
        raise CheckpointError(f"{d}: not saving weights with non-finite values (tensor {bad!r} holds NaN or inf)")
    data = safetensors_bytes(tensors, {"format": FORMAT_NAME, "architecture": preset.architecture})
    cfg = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "architecture": preset.architecture,
        "weights_sha256": hashlib.sha256(data).hexdigest(),
        "preset": preset.to_dict(),
        "vehicle": vehicle.to_dict(),
        "cameras": [dict(c) for c in cameras],
        "parameters": count_parameters(policy),
        "training": dict(training or {}),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "drive_il_version": __version__,
    }
    text = json.dumps(cfg, indent=2, sort_keys=True, default=float)
    cfg_path = d / CONFIG_NAME
    wtmp, ctmp = d / (WEIGHTS_NAME + ".tmp"), d / (CONFIG_NAME + ".tmp")
    try:
        d.mkdir(parents=True, exist_ok=True)
        _write_file(wtmp, data)
        _write_file(ctmp, text.encode("utf-8"))
    except OSError as e:
        _discard(wtmp, ctmp)
        raise CheckpointError(f"{d}: cannot write checkpoint ({_oserror_text(e)}); "
                              "any checkpoint already there is unchanged") from None
    try:
        if cfg_path.exists():
            cfg_path.unlink()  # never leave a config beside weights it does not describe
        os.replace(wtmp, d / WEIGHTS_NAME)
        os.replace(ctmp, cfg_path)
    except OSError as e:  # pragma: no cover - renames within a directory rarely fail
        _discard(wtmp, ctmp)
        raise CheckpointError(f"{d}: cannot write checkpoint ({_oserror_text(e)})") from None
    return d


def read_checkpoint_info(path: str | Path, *, expected_architecture: str | Iterable[str] | None = None) -> CheckpointInfo:
    """Read and validate ``config.json`` (weights not loaded).

    Raises:
        CheckpointError: not a checkpoint, unreadable JSON, another format or version,
            unknown or unexpected architecture, invalid preset.
    """
    from .registry import ARCHITECTURES, model_preset_from_dict

    d = resolve_checkpoint(path)
    cfg_path = d / CONFIG_NAME
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{cfg_path}: unreadable checkpoint config: {e}") from None
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT_NAME:
        got = cfg.get("format") if isinstance(cfg, dict) else type(cfg).__name__
        raise CheckpointError(f"{cfg_path}: not a drive_il checkpoint (format {got!r}, expected {FORMAT_NAME!r})")
    ver = cfg.get("format_version")
    if ver != FORMAT_VERSION:
        raise CheckpointError(f"{cfg_path}: checkpoint format version {ver!r}, this drive_il reads "
                              f"version {FORMAT_VERSION}")
    arch = cfg.get("architecture")
    if arch not in ARCHITECTURES:
        raise CheckpointError(f"{cfg_path}: unknown architecture {arch!r} (known: {', '.join(ARCHITECTURES)})")
    if expected_architecture is not None:
        exp = (expected_architecture,) if isinstance(expected_architecture, str) else tuple(expected_architecture)
        if arch not in exp:
            raise CheckpointError(f"{cfg_path}: checkpoint of architecture {arch!r}, expected "
                                  f"{' or '.join(repr(e) for e in exp)}")
    preset_dict = cfg.get("preset", {})
    if isinstance(preset_dict, dict):
        preset_dict = _drop_unknown_training_keys(preset_dict)
    try:
        preset = model_preset_from_dict(preset_dict, source=str(cfg_path))
    except DriveILError as e:
        raise CheckpointError(f"invalid checkpoint config: {e}") from None
    if preset.architecture != arch:
        raise CheckpointError(f"{cfg_path}: preset architecture {preset.architecture!r} differs from "
                              f"architecture {arch!r}")
    veh = cfg.get("vehicle") or {}
    try:
        vehicle = VehicleParams(wheelbase=float(veh["wheelbase"]), max_steer_angle=float(veh["max_steer_angle"]))
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{cfg_path}: field 'vehicle': expected wheelbase and max_steer_angle, "
                              f"got {veh!r}") from None
    cams = cfg.get("cameras") or []
    if not isinstance(cams, list) or not all(isinstance(c, dict) for c in cams):
        raise CheckpointError(f"{cfg_path}: field 'cameras': expected a list of camera tables")
    digest = cfg.get("weights_sha256")
    if digest is not None and not (isinstance(digest, str) and len(digest) == 64
                                   and all(ch in "0123456789abcdef" for ch in digest)):
        raise CheckpointError(f"{cfg_path}: field 'weights_sha256': expected 64 lower-case hex digits, "
                              f"got {digest!r}")
    return CheckpointInfo(path=d, architecture=arch, preset=preset, vehicle=vehicle,
                          cameras=tuple(cams), format_version=ver,
                          parameters=int(cfg.get("parameters", 0)), training=dict(cfg.get("training") or {}),
                          weights_sha256=digest)


def _drop_unknown_training_keys(preset: dict) -> dict:
    """The ``training`` and ``augmentation`` tables only describe how a checkpoint was
    made; keys this version does not know there are dropped (the architecture and the
    preprocessing, which decide what the weights mean, stay strict)."""
    import dataclasses

    from .presets import AugmentConfig, TrainConfig

    out = dict(preset)
    for key, cls in (("training", TrainConfig), ("augmentation", AugmentConfig)):
        table = out.get(key)
        if isinstance(table, dict):
            known = {f.name for f in dataclasses.fields(cls)}
            out[key] = {k: v for k, v in table.items() if k in known}
    return out


def load_checkpoint(path: str | Path, *, expected_architecture: str | Iterable[str] | None = None):
    """Load a policy from a checkpoint (never unpickles).

    Args:
        path: a checkpoint directory, its ``model.safetensors``, or a run directory
            (its ``best``, else ``last``).
        expected_architecture: raise unless the checkpoint is of this architecture
            (or one of these).

    Returns:
        (policy, info): the ``nn.Module`` in eval mode and its :class:`CheckpointInfo`.

    Raises:
        CheckpointError: see the module docstring.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    from .registry import build_policy

    info = read_checkpoint_info(path, expected_architecture=expected_architecture)
    wpath = info.path / WEIGHTS_NAME
    if not wpath.exists():
        raise CheckpointError(f"{wpath}: weights file missing")
    try:
        data = wpath.read_bytes()
        tensors = load(data)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{wpath}: corrupt weights file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    policy = build_policy(info.preset)
    expected = policy.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{wpath}: weights do not fit architecture {info.architecture!r} "
                              f"(missing {missing[:3]}, unexpected {extra[:3]})")
    for k, v in expected.items():
        if tuple(tensors[k].shape) != tuple(v.shape):
            raise CheckpointError(f"{wpath}: tensor {k!r} has shape {tuple(tensors[k].shape)}, "
                                  f"architecture {info.architecture!r} expects {tuple(v.shape)}")
    if info.weights_sha256 is not None and hashlib.sha256(data).hexdigest() != info.weights_sha256:
        raise CheckpointError(f"{wpath}: corrupt weights file (its SHA-256 differs from weights_sha256 in "
                              f"{CONFIG_NAME}: damaged or replaced since it was saved)")
    bad = _non_finite(tensors)
    if bad is not None:
        raise CheckpointError(f"{wpath}: tensor {bad!r} holds non-finite values (NaN or inf); "
                              "the checkpoint is unusable (a diverged training run?)")
    policy.load_state_dict(tensors, strict=True)
    policy.eval()
    return policy, info


def check_camera_rig(info: CheckpointInfo, cameras: Iterable[Any], *, source: str = "scenario") -> None:
    """Check that a rig provides the camera the model reads, as it was trained.

    Args:
        info: the checkpoint.
        cameras: the scenario's cameras (``CameraConfig`` objects or dicts).
        source: names the rig in the message.

    Raises:
        CheckpointError: the camera is missing, or its image size, field of view or
            mount differ from the training rig (size exactly; fov within 0.5 deg;
            mount within 5 cm and 0.5 deg).
    """
    def get(c: Any, k: str, default: Any = None) -> Any:
        return c.get(k, default) if isinstance(c, Mapping) else getattr(c, k, default)

    name = info.preprocessing.camera
    rig = {get(c, "name"): c for c in cameras}
    if name not in rig:
        raise CheckpointError(f"{info.path}: the model reads camera {name!r}, which the {source} rig "
                              f"lacks (cameras: {', '.join(map(str, rig)) or 'none'})")
    trained = info.camera
    if trained is None:
        return
    cam = rig[name]
    for k, tol, unit in (("width", 0, "px"), ("height", 0, "px"), ("fov_deg", 0.5, "deg"),
                         ("x", 0.05, "m"), ("y", 0.05, "m"), ("z", 0.05, "m"),
                         ("pitch_deg", 0.5, "deg"), ("yaw_deg", 0.5, "deg")):
        if k not in trained:
            continue
        a, b = float(get(cam, k, float("nan"))), float(trained[k])
        if not abs(a - b) <= tol:
            raise CheckpointError(f"{info.path}: camera {name!r} of the {source} rig has {k} = {a:g} {unit}, "
                                  f"the model was trained with {k} = {b:g} {unit}")


def save_optimizer(path: str | Path, optimizer, state: Mapping[str, Any]) -> None:
    """Save an optimizer's state (tensors in safetensors, the rest in JSON) and the
    trainer's loop state (``trainer_state.json``) next to a checkpoint."""
    import torch

    d = Path(path)
    sd = optimizer.state_dict()
    tensors: dict[str, Any] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[k] = v
    tmp = d / (OPTIMIZER_NAME + ".tmp")
    try:
        _write_file(tmp, safetensors_bytes(tensors))
        os.replace(tmp, d / OPTIMIZER_NAME)
    except OSError as e:
        _discard(tmp)
        raise CheckpointError(f"{d}: cannot write the optimizer state ({_oserror_text(e)})") from None
    doc = {"param_groups": sd["param_groups"], "scalars": scalars, "loop": dict(state)}
    _atomic_write_text(d / TRAINER_STATE_NAME, json.dumps(doc, indent=2, default=float))


def load_optimizer(path: str | Path, optimizer) -> dict[str, Any]:
    """Restore an optimizer saved by :func:`save_optimizer`; returns the loop state.

    Raises:
        CheckpointError: files missing or corrupt.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    d = Path(path)
    try:
        doc = json.loads((d / TRAINER_STATE_NAME).read_text(encoding="utf-8"))
        tensors = load_file(str(d / OPTIMIZER_NAME))
    except FileNotFoundError as e:
        raise CheckpointError(f"{d}: cannot resume: {Path(e.filename).name if e.filename else e} missing") from None
    except (OSError, json.JSONDecodeError, SafetensorError, ValueError) as e:
        raise CheckpointError(f"{d}: cannot resume: corrupt trainer state ({e})") from None
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    for pid, sc in doc.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(sc)
    try:
        optimizer.load_state_dict({"state": state, "param_groups": doc["param_groups"]})
    except (KeyError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{d}: cannot resume: optimizer state does not fit ({e})") from None
    return dict(doc.get("loop", {}))
