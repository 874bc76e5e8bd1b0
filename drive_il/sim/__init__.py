"""Simulators: the embedded world (default) and a CARLA server backend."""

from __future__ import annotations

from pathlib import Path

from .base import Simulator, StartPose

__all__ = ["Simulator", "StartPose", "make_simulator"]


def make_simulator(backend: str = "embedded", *, maps_dir: str | Path | None = None,
                   host: str = "localhost", port: int = 2000, tm_port: int = 8000,
                   timeout: float = 10.0) -> Simulator:
    """Create a simulator.

    Args:
        backend: "embedded" (in-process, no server) or "carla" (a CARLA 0.9.x server).
        maps_dir: folder of OpenDRIVE towns for the embedded world.
        host, port, tm_port, timeout: CARLA connection (RPC port, Traffic Manager port,
            client time-out [s]).

    Raises:
        ValueError: unknown backend.
    """
    if backend == "embedded":
        from .embedded.world import EmbeddedSimulator
        return EmbeddedSimulator(maps_dir=maps_dir)
    if backend == "carla":
        from .carla import CarlaSimulator
        return CarlaSimulator(host=host, port=port, tm_port=tm_port, timeout=timeout, maps_dir=maps_dir)
    raise ValueError(f"unknown backend {backend!r} (expected 'embedded' or 'carla')")
