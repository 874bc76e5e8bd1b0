"""Exceptions that the command line reports as one clear line and a non-zero exit.

Every error that a user can cause by bad input (a file, a field, a value) derives from
:class:`DriveILError`; its message names the file, field or value and what was expected.
``drive_il.cli`` catches it, prints ``drive-il: error: <message>`` and exits with 2.
"""

from __future__ import annotations


class DriveILError(Exception):
    """Base class of user-facing errors (bad input, missing files, unreachable server)."""


class ConfigError(DriveILError, ValueError):
    """A TOML file (scenario, expert preset, model preset, calibration) is malformed,
    has an unknown key, a value of the wrong type or out of range."""


class FieldError(ConfigError):
    """A config dataclass was built with a bad field value (raised by its
    ``__post_init__``, whatever built it: a TOML loader, the command line, Python code).

    The message is ``"<Class>: field '<name>': <detail>"``; a loader that knows where the
    value came from re-raises it with the file (or the command-line flag) and the dotted
    path in front, keeping ``detail`` word for word.

    Attributes:
        owner: the dataclass name.
        field: the field name.
        detail: what was expected and what was given, e.g.
            ``"expected a number in [0.0, 0.9], got 5.0"``.
    """

    def __init__(self, owner: str, field: str, detail: str) -> None:
        super().__init__(f"{owner}: field '{field}': {detail}")
        self.owner = owner
        self.field = field
        self.detail = detail

    def __reduce__(self):  # picklable across processes (DataLoader workers, serve)
        return (FieldError, (self.owner, self.field, self.detail))


class MapError(DriveILError):
    """A town cannot be resolved or its OpenDRIVE file is missing or corrupt."""


class ScenarioError(DriveILError):
    """A scenario cannot be set up: spawn off the road, unreachable goal, ..."""


class DataError(DriveILError):
    """An episode file or dataset is unreadable, of an unknown schema version, or
    inconsistent (mixed camera rigs, empty directory)."""


class CheckpointError(DriveILError):
    """A checkpoint is missing, corrupt, of another architecture or format version."""


class SimulatorConnectionError(DriveILError):
    """A CARLA server cannot be reached or was lost."""


class SimulatorLostError(SimulatorConnectionError):
    """The simulator was lost in the middle of an episode (a time-out or a dropped
    connection). The episode in progress is failed and must not be kept; calling
    ``Simulator.reset`` again reconnects (with back-off) and starts the next one."""


class SensorTimeoutError(SimulatorLostError):
    """A sensor produced no data for the simulation frame just ticked (CARLA backend):
    the episode in progress is failed; ``reset`` starts the next one."""
