"""The pool for ``--workers``/``--ray``: one place that chooses it."""

from __future__ import annotations

from .jobs import SimRecipe
from .pool import ProcessPool, RolloutPool

__all__ = ["make_pool"]


def make_pool(workers: int = 1, recipe: SimRecipe | None = None, *, ray: str | None = None,
              max_attempts: int = 3) -> RolloutPool | None:
    """The pool for ``--workers``/``--ray``, or None for in-process driving
    (``workers == 1`` without Ray).

    Args:
        workers: local processes, or Ray actors with ``ray`` (>= 1).
        recipe: how each worker builds its simulator.
        ray: None, "auto" (connect to the running cluster, else start one on this
            machine) or a Ray address ("host:port", "ray://host:port").

    Raises:
        ConfigError: workers < 1; Ray asked for but not installed (the line says how to
            install it); the Ray cluster cannot be reached.
    """
    from ...errors import ConfigError
    if workers < 1:
        raise ConfigError(f"--workers {workers}: expected an integer >= 1")
    recipe = recipe or SimRecipe()
    if ray is not None:
        from .ray_pool import RayPool
        return RayPool(workers, recipe, address=ray, max_attempts=max_attempts)
    if workers == 1:
        return None
    return ProcessPool(workers, recipe, max_attempts=max_attempts)
