"""Where the network runs: ``--device auto|cpu|cuda|cuda:N`` and mixed precision.

Core layer: imports only :mod:`drive_il.errors` (torch is imported lazily inside the
functions, so importing this module costs nothing).

* :func:`resolve_device` turns a device spec (``auto``, ``cpu``, ``cuda``, ``cuda:N``,
  or a ``torch.device``) into a ``torch.device``, or raises one-line
  :class:`~drive_il.errors.ConfigError` naming the flag, the value and what was expected
  (``--device cuda`` on a machine without CUDA, ``cuda:3`` on a 2-GPU machine, ``bogus``).
* :func:`autocast_context` is the context manager of the forward pass and the loss:
  bfloat16 autocast on CUDA with ``amp``; a no-op elsewhere (with one logged warning when
  ``amp`` is asked on the CPU, where it is ignored).

Example::

    device = resolve_device(args.device, flag="--device")     # torch.device("cuda") or ("cpu")
    with autocast_context(device, amp=True):
        out = policy(x.to(device))
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from .errors import ConfigError

__all__ = ["autocast_context", "is_cuda", "resolve_device"]

log = logging.getLogger(__name__)

_warned_cpu_amp = False


def _torch_name(torch: Any) -> str:
    return f"torch {torch.__version__}"


def resolve_device(spec: Any = "auto", *, flag: str = "--device"):
    """The ``torch.device`` of a device spec.

    Args:
        spec: ``"auto"`` (``cuda`` when ``torch.cuda.is_available()``, else ``cpu``),
            ``"cpu"``, ``"cuda"`` (the current CUDA device, index 0 unless set),
            ``"cuda:N"`` (N >= 0), a ``torch.device`` of those types, or None (= auto).
            Case and surrounding spaces are ignored.
        flag: the option or parameter named in the error message.

    Returns:
        ``torch.device("cpu")``, ``torch.device("cuda")`` or ``torch.device("cuda", N)``.

    Raises:
        ConfigError: one line naming ``flag`` and the value: an unknown spec, CUDA asked
            for where torch sees no GPU, or ``cuda:N`` with N >= the number of GPUs.
    """
    import torch

    if spec is None:
        spec = "auto"
    if isinstance(spec, torch.device):
        text = str(spec)
    elif isinstance(spec, str):
        text = spec.strip().lower()
    else:
        raise ConfigError(f"{flag} {spec!r}: expected auto, cpu, cuda or cuda:N (a string), "
                          f"got a {type(spec).__name__}")
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    index: int | None = None
    if text == "cuda":
        pass
    elif text.startswith("cuda:") and text[5:].isdigit():
        index = int(text[5:])
    else:
        raise ConfigError(f"{flag} {spec}: unknown device; expected auto, cpu, cuda or cuda:N (N = 0, 1, ...)")
    if not torch.cuda.is_available():
        raise ConfigError(f"{flag} {spec}: CUDA is not available ({_torch_name(torch)} sees no GPU); "
                          f"use {flag} cpu or auto")
    if index is None:
        return torch.device("cuda")
    n = torch.cuda.device_count()
    if index >= n:
        have = "cuda:0" if n == 1 else f"cuda:0..cuda:{n - 1}"
        raise ConfigError(f"{flag} {spec}: no such GPU; {_torch_name(torch)} sees {n} CUDA device"
                          f"{'s' if n != 1 else ''} ({have})")
    return torch.device("cuda", index)


def is_cuda(device: Any) -> bool:
    """True when ``device`` (a ``torch.device`` or a string) is a CUDA device."""
    return str(getattr(device, "type", device)).split(":")[0] == "cuda"


def autocast_context(device: Any, amp: bool):
    """The context manager to run forward passes and losses in.

    Args:
        device: the ``torch.device`` (or spec string) the tensors live on.
        amp: mixed precision asked for.

    Returns:
        ``torch.autocast("cuda", dtype=torch.bfloat16)`` when ``device`` is CUDA and
        ``amp``: matrix products and convolutions run in bfloat16 (8-bit mantissa,
        float32's range, so no loss scaling is needed), reductions such as the MSE stay
        float32. Otherwise ``contextlib.nullcontext()``; ``amp`` on a CPU device logs one
        warning per process (mixed precision is ignored there: the CPU path stays
        float32 and bitwise the same as without ``amp``).
    """
    global _warned_cpu_amp
    if amp and is_cuda(device):
        import torch
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if amp and not _warned_cpu_amp:
        _warned_cpu_amp = True
        log.warning("--amp: mixed precision is for CUDA only; ignored on device %s (training stays float32)",
                    device)
    return contextlib.nullcontext()
