"""Summaries, integrity checks and repair of episode directories (``drive-il data
info|verify|repair``).

Pure functions returning report dataclasses; :mod:`drive_il.commands.data` prints them.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DataError
from ..types import STOP_REASON_UNKNOWN, stop_reason_name
from .storage import (EPISODE_SUFFIX, MANIFEST_KEYS, MANIFEST_NAME, PARTIAL_SUFFIX, STEP_FIELDS, EpisodeMeta,
                      EpisodeReader, RigChecker, list_episodes, locked_directory, manifest_entry, read_manifest,
                      scan_dir, step_fields_of_version, write_manifest)

__all__ = ["DataInfo", "VerifyReport", "RepairReport", "data_info", "verify_dir", "repair_dir", "rig_problem",
           "format_info", "format_repair", "steering_histogram", "command_table", "command_name", "town_family", "STAND_SPEED",
           "STANDING_SPEED", "GO_SPEED", "starting_off", "standing_run_reasons"]

#: Below this speed [m/s] a car stands (the learner's ``PolicyDriver.stop_speed``).
STAND_SPEED = 0.3
#: Start-off steps (:func:`starting_off`): the car is below this measured speed [m/s] ...
STANDING_SPEED = 0.5
#: ... and the expert's speed label is at or above this [m/s].
GO_SPEED = 2.0


def starting_off(speed: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Where the expert starts off: the car stands (measured ``speed`` (N,) [m/s] below
    :data:`STANDING_SPEED`) and its ``target_speed`` label (N,) [m/s] says go (>=
    :data:`GO_SPEED`); a NaN label is no start. Returns a (N,) bool mask. These are the
    few frames that teach a speed head to leave a stop (the data side of CILRS's inertia
    problem, Codevilla et al., ICCV 2019): ``drive-il data info`` counts them and
    ``[training] balance_standing`` weighs them up."""
    speed, target = np.asarray(speed, dtype=np.float64), np.asarray(target, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return (speed < STANDING_SPEED) & (target >= GO_SPEED)


def standing_run_reasons(episode: np.ndarray, speed: np.ndarray, stop_reason: np.ndarray) -> np.ndarray:
    """The stop reason of each frame's standing run: frames (N,) in episode and time
    order (``episode`` ids, measured ``speed`` [m/s], the expert's ``stop_reason``
    codes of :data:`~drive_il.types.STOP_REASONS`); a run is a stretch of consecutive
    standing frames (speed < :data:`STANDING_SPEED`) of one
    episode. A frame's code is the last named reason (not 0, not
    :data:`~drive_il.types.STOP_REASON_UNKNOWN`) at or before it in its run, so the
    start-off frame that ends a wait gets the wait's reason; 0 where none was named
    yet, :data:`~drive_il.types.STOP_REASON_UNKNOWN` where the run has unknown codes
    and no named one; 0 for moving frames. Returns (N,) int64."""
    ep = np.asarray(episode)
    code = np.asarray(stop_reason).astype(np.int64)
    standing = np.asarray(speed, dtype=np.float64) < STANDING_SPEED
    n = len(code)
    idx = np.arange(n)
    start = standing.copy()
    start[1:] &= ~standing[:-1] | (ep[1:] != ep[:-1])
    run_start = np.maximum.accumulate(np.where(start, idx, 0))
    named = standing & (code != 0) & (code != STOP_REASON_UNKNOWN)
    last = np.maximum.accumulate(np.where(named, idx, -1))
    out = np.zeros(n, np.int64)
    has = standing & (last >= run_start)
    out[has] = code[last[has]]
    unknown = standing & (code == STOP_REASON_UNKNOWN)
    last_u = np.maximum.accumulate(np.where(unknown, idx, -1))
    out[standing & ~has & (last_u >= run_start)] = STOP_REASON_UNKNOWN
    return out


@dataclass
class DataInfo:
    """What one or many episode directories hold.

    Attributes:
        dirs: the directories.
        episodes: finished, readable episodes.
        steps: control steps over all episodes.
        frames: camera frames (steps x cameras).
        hours: driven time [h]; km: driven distance [km].
        cameras: camera name -> image sizes seen ("HxW").
        rigs: camera name -> mount poses and fields of view seen.
        towns, weathers, densities: name -> (episodes, hours, km) (densities: the
            traffic condition, "" for files that do not record it).
        drivers, terminations: name -> episodes.
        dagger_rounds: round (None outside DAgger) -> (episodes, betas seen).
        noisy_episodes, noisy_steps, intervention_steps: counts.
        speed_label_steps: steps with a finite speed label (``target_speed``).
        standing_steps: labelled steps where the car stands and the expert keeps it there
            (label and measured speed < :data:`STAND_SPEED`).
        starting_steps: labelled steps where the expert starts off (:func:`starting_off`).
        standing_reasons: the standing steps by the expert's stop reason (``steps/stop_reason``,
            :func:`drive_il.types.stop_reason_name`: "red_light", "vehicle", ..., "unknown"
            in files older than schema version 3).
        starting_reasons: the start-off steps by the reason of the wait they end
            (:func:`standing_run_reasons`; "none": a start from rest with no named
            wait, e.g. the episode's first steps).
        standing_gaps: the standing steps' gaps [m] from the front bumper to what the
            expert stands for (``steps/obstacle``, schema 4), by stop reason.
        steer: every expert steering label (for the histogram).
        commands: (town family, route command name) -> expert steering labels of the
            steps under that command; the family is the town name, or "procedural" for
            every ``procedural:<seed>`` town (:func:`town_family`). A command-branched
            policy trains each branch on one command's labels from every town, so this
            shows which towns a branch learns its turns from.
        partial: partial files; damaged: (file, reason).
    """

    dirs: list[Path]
    episodes: int = 0
    steps: int = 0
    frames: int = 0
    hours: float = 0.0
    km: float = 0.0
    cameras: dict[str, set] = field(default_factory=dict)
    rigs: dict[str, set] = field(default_factory=dict)
    towns: dict[str, list] = field(default_factory=dict)
    weathers: dict[str, list] = field(default_factory=dict)
    densities: dict[str, list] = field(default_factory=dict)
    drivers: Counter = field(default_factory=Counter)
    terminations: Counter = field(default_factory=Counter)
    dagger_rounds: dict = field(default_factory=dict)
    noisy_episodes: int = 0
    noisy_steps: int = 0
    intervention_steps: int = 0
    speed_label_steps: int = 0
    standing_steps: int = 0
    starting_steps: int = 0
    standing_reasons: Counter = field(default_factory=Counter)
    starting_reasons: Counter = field(default_factory=Counter)
    standing_gaps: dict[str, list[np.ndarray]] = field(default_factory=dict)
    steer: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    commands: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    partial: list[Path] = field(default_factory=list)
    damaged: list[tuple[Path, str]] = field(default_factory=list)


def data_info(dirs: Sequence[str | Path]) -> DataInfo:
    """Summarise episode directories (reads each file's attributes and labels).

    Raises:
        DataError: a directory is missing, or no directory holds a finished episode
            ("no finished episodes in DIR (N partial)").
    """
    ds = [Path(d) for d in dirs]
    info = DataInfo(dirs=ds)
    steers: list[np.ndarray] = []
    by_command: dict[tuple[str, str], list[np.ndarray]] = {}
    for d in ds:
        rep = scan_dir(d)
        info.partial.extend(rep.partial)
        info.damaged.extend(rep.damaged)
        for p in rep.finished:
            try:
                with EpisodeReader(p) as r:
                    m = r.meta
                    expert = r.steps["expert"]
                    command = r.steps["command"]
                    noise = r.steps["noise"]
                    inter = r.steps["intervention"]
                    target, speed = r.steps["target_speed"], r.steps["speed"]
                    reasons = r.steps["stop_reason"]
                    gaps = np.asarray(r.steps["obstacle"][:, 0], dtype=np.float64)
                    n_speed = int(np.count_nonzero(np.isfinite(target)))
                    shapes = {c: r.frames(c).shape[1:3] for c in r.cameras}
            except DataError as e:
                info.damaged.append((p, str(e)))
                continue
            h = m.steps * m.dt / 3600.0
            km = m.distance / 1000.0
            info.episodes += 1
            info.steps += m.steps
            info.frames += m.steps * len(shapes)
            info.hours += h
            info.km += km
            for c, (hh, ww) in shapes.items():
                info.cameras.setdefault(c, set()).add(f"{hh}x{ww}")
                e = {r.get("name"): r for r in m.cameras}.get(c, {})
                info.rigs.setdefault(c, set()).add(
                    f"x={float(e.get('x', 0)):+.2f} y={float(e.get('y', 0)):+.2f} z={float(e.get('z', 0)):.2f} m, "
                    f"yaw={float(e.get('yaw_deg', 0)):+.1f} pitch={float(e.get('pitch_deg', 0)):+.1f} "
                    f"fov={float(e.get('fov_deg', 0)):.0f} deg")
            for table, key in ((info.towns, m.town), (info.weathers, m.weather), (info.densities, m.density)):
                row = table.setdefault(key, [0, 0.0, 0.0])
                row[0] += 1
                row[1] += h
                row[2] += km
            info.drivers[m.driver] += 1
            info.terminations[m.termination] += 1
            dr = info.dagger_rounds.setdefault(m.dagger_round, [0, set()])
            dr[0] += 1
            if m.beta is not None:
                dr[1].add(round(m.beta, 4))
            n_noisy = int(np.count_nonzero(noise))
            info.noisy_steps += n_noisy
            info.noisy_episodes += int(n_noisy > 0)
            info.intervention_steps += int(np.count_nonzero(inter))
            info.speed_label_steps += n_speed
            with np.errstate(invalid="ignore"):   # NaN labels (schema 1, or none) compare False
                standing = (target < STAND_SPEED) & (speed < STAND_SPEED)
            info.standing_steps += int(np.count_nonzero(standing))
            for code, n in zip(*np.unique(reasons[standing], return_counts=True)):
                info.standing_reasons[stop_reason_name(int(code))] += int(n)
            known = standing & np.isfinite(gaps)
            for code in np.unique(reasons[known]):
                info.standing_gaps.setdefault(stop_reason_name(int(code)), []).append(
                    gaps[known & (reasons == code)])
            go = starting_off(speed, target)
            info.starting_steps += int(np.count_nonzero(go))
            if go.any():
                run = standing_run_reasons(np.zeros(len(speed), np.int64), speed, reasons)
                for code, n in zip(*np.unique(run[go], return_counts=True)):
                    info.starting_reasons[stop_reason_name(int(code))] += int(n)
            steers.append(np.asarray(expert[:, 0], dtype=np.float32))
            fam = town_family(m.town)
            for code in np.unique(command):
                key = (fam, command_name(int(code)))
                by_command.setdefault(key, []).append(steers[-1][command == code])
    if info.episodes == 0:
        where = ", ".join(str(d) for d in ds)
        extra = f", {len(info.damaged)} damaged" if info.damaged else ""
        raise DataError(f"no finished episodes in {where} ({len(info.partial)} partial{extra})")
    info.steer = np.concatenate(steers) if steers else np.zeros(0, np.float32)
    info.commands = {k: np.concatenate(v) for k, v in sorted(by_command.items())}
    return info


def town_family(town: str) -> str:
    """"procedural" for a ``procedural:<seed>`` town
    (:func:`drive_il.maps.procedural.is_procedural`), else the town's name ("?" if none)."""
    from ..maps.procedural import is_procedural
    return "procedural" if is_procedural(town) else (town or "?")


def command_name(code: int) -> str:
    """The RoadOption name of a route command code (e.g. 2 -> "RIGHT"); the code as text
    when it is not a RoadOption value."""
    from ..types import RoadOption
    try:
        return RoadOption(code).name
    except ValueError:
        return str(code)


def command_table(commands: dict[tuple[str, str], np.ndarray]) -> list[str]:
    """Lines of the per-command steering table: for each route command and town family,
    steps, mean steer and the median and 90th percentile of |steer| (steer in [-1, 1],
    +1 = right)."""
    if not commands:
        return []
    lines = [f"{'command':<18} {'towns':<14} {'steps':>7} {'mean':>7} {'|s| p50':>8} {'|s| p90':>8}"]
    order = {name: i for i, name in enumerate(("LEFT", "RIGHT", "STRAIGHT", "LANEFOLLOW"))}
    for fam, cmd in sorted(commands, key=lambda k: (order.get(k[1], 9), k[1], k[0])):
        v = np.asarray(commands[(fam, cmd)], dtype=np.float64)
        v = v[np.isfinite(v)]
        if not len(v):
            continue
        a = np.abs(v)
        lines.append(f"{cmd:<18} {fam:<14} {len(v):>7d} {v.mean():>+7.3f} {np.median(a):>8.3f} "
                     f"{np.percentile(a, 90):>8.3f}")
    return lines


def steering_histogram(steer: np.ndarray, *, bins: int = 10, width: int = 40) -> list[str]:
    """Text histogram of steering values over [-1, 1] (one line per bin)."""
    steer = np.asarray(steer, dtype=np.float64)
    steer = steer[np.isfinite(steer)]
    counts, edges = np.histogram(np.clip(steer, -1.0, 1.0), bins=bins, range=(-1.0, 1.0))
    total = max(int(counts.sum()), 1)
    top = max(int(counts.max()), 1) if len(counts) else 1
    lines = []
    for i, c in enumerate(counts):
        bar = "#" * int(round(width * c / top))
        close = "]" if i == bins - 1 else ")"
        lines.append(f"[{edges[i]:+.1f}, {edges[i + 1]:+.1f}{close} {bar:<{width}} {int(c):>8d} {100.0 * c / total:5.1f}%")
    return lines


def _town_rows(towns: dict[str, list]) -> list[tuple[str, list]]:
    """``DataInfo.towns`` for printing: named towns, then the procedural towns summed in
    one row ("procedural (N towns)"), which would otherwise be hundreds of entries."""
    rows = [(k or "?", v) for k, v in sorted(towns.items()) if town_family(k) != "procedural"]
    proc = [v for k, v in towns.items() if town_family(k) == "procedural"]
    if proc:
        rows.append((f"procedural ({len(proc)} towns)",
                     [sum(v[0] for v in proc), sum(v[1] for v in proc), sum(v[2] for v in proc)]))
    return rows


def format_info(info: DataInfo) -> list[str]:
    """The lines ``drive-il data info`` prints."""
    cams = ", ".join(f"{c} {'/'.join(sorted(s))}" for c, s in info.cameras.items())
    out = [
        f"data: {', '.join(str(d) for d in info.dirs)}",
        f"episodes: {info.episodes}   steps: {info.steps}   frames: {info.frames} ({cams})",
        "camera rig:",
        *(f"  {c:<8} {' | '.join(sorted(v))}" for c, v in info.rigs.items()),
        f"driven: {info.hours:.3f} h   {info.km:.2f} km",
        "per town:    " + "; ".join(f"{k}: {v[0]} ep, {v[1]:.3f} h, {v[2]:.2f} km"
                                     for k, v in _town_rows(info.towns)),
        "per weather: " + "; ".join(f"{k or '?'}: {v[0]} ep, {v[1]:.3f} h, {v[2]:.2f} km"
                                     for k, v in sorted(info.weathers.items())),
        "per traffic: " + "; ".join(f"{k or '?'}: {v[0]} ep, {v[1]:.3f} h, {v[2]:.2f} km"
                                     for k, v in sorted(info.densities.items())),
        "drivers:     " + ", ".join(f"{k or '?'} {v}" for k, v in sorted(info.drivers.items())),
        "terminations: " + ", ".join(f"{k or '?'} {v}" for k, v in sorted(info.terminations.items())),
    ]
    rounds = sorted((k for k in info.dagger_rounds if k is not None))
    if rounds:
        parts = []
        for k in rounds:
            n, betas = info.dagger_rounds[k]
            b = ", ".join(f"{x:g}" for x in sorted(betas))
            parts.append(f"round {k}: {n} ep" + (f" (beta {b})" if b else ""))
        if None in info.dagger_rounds:
            parts.insert(0, f"no round: {info.dagger_rounds[None][0]} ep")
        out.append("DAgger rounds: " + "; ".join(parts))
    else:
        out.append("DAgger rounds: none")
    share = 100.0 * info.noisy_steps / max(info.steps, 1)
    out.append(f"noise: {info.noisy_episodes} episodes with injected noise, {info.noisy_steps} noisy steps "
               f"({share:.1f}%)   interventions: {info.intervention_steps} steps")
    out.append(f"speed labels (target_speed): {info.speed_label_steps} steps "
               f"({100.0 * info.speed_label_steps / max(info.steps, 1):.1f}%; a speed head trains on these)")
    if info.speed_label_steps:
        n = info.speed_label_steps
        out.append(f"  standing (label and speed < {STAND_SPEED:g} m/s): {info.standing_steps} "
                   f"({100.0 * info.standing_steps / n:.1f}%)   starting off (label >= {GO_SPEED:g} m/s "
                   f"below {STANDING_SPEED:g} m/s): "
                   f"{info.starting_steps} ({100.0 * info.starting_steps / n:.1f}%)")
        if info.standing_steps:
            out.append("  standing steps by the expert's stop reason: " + ", ".join(
                f"{k} {v} ({100.0 * v / info.standing_steps:.1f}%)" for k, v in info.standing_reasons.most_common()))
        if info.standing_gaps:
            parts = []
            for k in sorted(info.standing_gaps):
                g = np.concatenate(info.standing_gaps[k])
                p10, p50, p90 = np.percentile(g, (10, 50, 90))
                parts.append(f"{k} {p10:.1f} / {p50:.1f} / {p90:.1f}")
            out.append("  standing: gap from the front bumper to what the expert stands for [m] (p10 / p50 / p90): "
                       + ", ".join(parts))
        if info.starting_steps:
            out.append("  starting-off steps by the wait they end: " + ", ".join(
                f"{k} {v} ({100.0 * v / info.starting_steps:.1f}%)" for k, v in info.starting_reasons.most_common()))
    out.append("expert steering histogram (steer, +1 = right):")
    out.extend("  " + line for line in steering_histogram(info.steer))
    if info.commands:
        out.append("expert steering per route command and town (what each command branch learns from):")
        out.extend("  " + line for line in command_table(info.commands))
    out.append(f"partial files: {len(info.partial)}" + (
        " (" + ", ".join(p.name for p in info.partial) + ")" if info.partial else ""))
    out.append(f"damaged files: {len(info.damaged)}")
    out.extend(f"  {reason}" for _, reason in info.damaged)
    return out


# --------------------------------------------------------------------------- verify


@dataclass
class VerifyReport:
    """Result of :func:`verify_dir`.

    Attributes:
        directory: the directory checked.
        checked: finished files opened.
        problems: one line per problem (empty = OK).
        partial: partial files found (each also listed in ``problems``).
    """

    directory: Path
    checked: int = 0
    problems: list[str] = field(default_factory=list)
    partial: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_dir(directory: str | Path, *, read_frames: bool = True, block: int = 256) -> VerifyReport:
    """Check every file of an episode directory and the manifest.

    Checks: each finished file opens, has a supported schema version and was completed
    by its writer; every per-step array exists with length T and the expected trailing
    shape; every camera's frames are (T, H, W, 3) uint8 in one-frame chunks matching the
    stored rig; the expert labels are finite and in range; (``read_frames``) every frame
    can be read and every per-step array too (reading each chunk: episodes written
since the checksums were added carry HDF5's per-chunk fletcher32 checksum, so flipped
bits fail the read and are reported naming the file, the dataset and the first damaged
frame); the manifest parses, lists every finished file once with its step
    count and names no missing file. Partial files are reported as such.

    Raises:
        DataError: ``directory`` does not exist.
    """
    d = Path(directory)
    rep = VerifyReport(directory=d)
    files = list_episodes(d)
    for p in sorted(q for q in d.iterdir() if q.name.endswith(EPISODE_SUFFIX + PARTIAL_SUFFIX)):
        rep.partial.append(p)
        rep.problems.append(f"{p}: partial file (an episode that was interrupted or is being written)")
    steps_of: dict[str, int] = {}
    metas: list[EpisodeMeta] = []
    for p in files:
        rep.checked += 1
        probs, meta = _verify_file(p, read_frames=read_frames, block=block)
        rep.problems.extend(probs)
        if meta is not None:
            steps_of[p.name] = meta.steps
            metas.append(meta)
    present = {p.name for p in files}
    entries, mprobs = read_manifest(d)
    rep.problems.extend(mprobs)
    seen: Counter = Counter(e["file"] for e in entries)
    for name, n in seen.items():
        if n > 1:
            rep.problems.append(f"{d / MANIFEST_NAME}: {name} listed {n} times")
    for e in entries:
        name = e["file"]
        if name not in present:
            rep.problems.append(f"{d / MANIFEST_NAME}: lists {name}, which is not in the directory")
        elif name in steps_of and e.get("steps") is not None and int(e["steps"]) != steps_of[name]:
            rep.problems.append(f"{d / MANIFEST_NAME}: {name} has {e['steps']} steps in the manifest "
                                f"but {steps_of[name]} in the file")
    checker = RigChecker(None)
    try:
        for m in metas:
            checker.add(m)
    except DataError as e:
        rep.problems.append(str(e))
    for p in files:
        if p.name not in seen:
            rep.problems.append(f"{p}: finished file missing from {MANIFEST_NAME} "
                                "(a crash between rename and manifest append?)")
    return rep


def _verify_file(p: Path, *, read_frames: bool, block: int) -> tuple[list[str], EpisodeMeta | None]:
    """(problems, meta); meta is None when the file cannot be opened."""
    probs: list[str] = []
    m: EpisodeMeta | None = None
    try:
        with EpisodeReader(p) as r:
            m = r.meta
            n = m.steps
            if not m.complete:
                return [f"{p}: not finished by its writer (attribute complete is false)"], m
            f = r.h5
            if "steps" not in f:
                return [f"{p}: group /steps missing"], m
            g = f["steps"]
            stored = step_fields_of_version(m.schema_version)
            for k, (dtype, tail, _) in STEP_FIELDS.items():
                if k not in stored:
                    continue   # added after this file's schema version: read as STEP_FIELD_DEFAULTS
                if k not in g:
                    probs.append(f"{p}: steps/{k} missing")
                    continue
                ds = g[k]
                if ds.shape != (n, *tail):
                    probs.append(f"{p}: steps/{k} has shape {ds.shape}, expected {(n, *tail)}")
                elif np.dtype(ds.dtype).kind != np.dtype(dtype).kind:
                    probs.append(f"{p}: steps/{k} has dtype {ds.dtype}, expected {dtype}")
            if not probs:
                for k in stored:  # every chunk: HDF5 checks each one's fletcher32 checksum
                    try:
                        g[k][()]
                    except (OSError, RuntimeError) as err:
                        probs.append(f"{p}: steps/{k} damaged (checksum mismatch or unreadable chunk: "
                                     f"{' '.join(str(err).split())[:120]})")
            if not probs:
                ex = r.steps["expert"]
                if not np.isfinite(ex).all():
                    probs.append(f"{p}: steps/expert holds non-finite labels")
                elif n and (np.abs(ex[:, 0]).max() > 1.0 or ex[:, 1:].min() < 0.0 or ex[:, 1:].max() > 1.0):
                    probs.append(f"{p}: steps/expert holds labels out of range")
                names = r.driver_names
                if n and int(r.steps["driver"].max()) >= len(names):
                    probs.append(f"{p}: steps/driver codes exceed the {len(names)} driver names")
            rig = {c.get("name"): c for c in m.cameras}
            cams = r.cameras
            if set(rig) != set(cams):
                probs.append(f"{p}: camera rig lists {sorted(rig)} but frames hold {sorted(cams)}")
            if not cams:
                probs.append(f"{p}: no camera frames")
            for c in cams:
                ds = r.frames(c)
                if ds.ndim != 4 or ds.shape[0] != n or ds.shape[3] != 3 or ds.dtype != np.uint8:
                    probs.append(f"{p}: frames/{c} is {ds.shape} {ds.dtype}, expected ({n}, H, W, 3) uint8")
                    continue
                if ds.chunks != (1, *ds.shape[1:]):
                    probs.append(f"{p}: frames/{c} chunks {ds.chunks}, expected one frame per chunk")
                e = rig.get(c, {})
                if (e.get("height"), e.get("width")) != tuple(ds.shape[1:3]):
                    probs.append(f"{p}: frames/{c} are {ds.shape[1]}x{ds.shape[2]} but the rig says "
                                 f"{e.get('height')}x{e.get('width')}")
                if read_frames:
                    bad = _unreadable_frames(ds, n, block)
                    if bad:
                        t0, count, err = bad
                        probs.append(f"{p}: frames/{c}: {count} damaged frame(s), the first at frame {t0} "
                                     f"(checksum mismatch or unreadable chunk: {err})")
            if not math.isfinite(m.dt) or m.dt <= 0:
                probs.append(f"{p}: dt = {m.dt} is not a positive number")
    except DataError as e:
        probs.append(str(e))
    except (OSError, RuntimeError, KeyError, ValueError) as e:
        probs.append(f"{p}: damaged episode file ({' '.join(str(e).split())[:160]})")
    return probs, m


def _unreadable_frames(ds, n: int, block: int) -> tuple[int, int, str] | None:
    """Read every frame of ``ds`` (``block`` at a time; a failing block frame by frame):
    (first damaged frame, number of damaged frames, the first error) or None."""
    first, count, msg = -1, 0, ""
    for t0 in range(0, n, block):
        try:
            ds[t0:t0 + block]
            continue
        except (OSError, RuntimeError):
            pass
        for t in range(t0, min(n, t0 + block)):
            try:
                ds[t]
            except (OSError, RuntimeError) as err:
                if first < 0:
                    first, msg = t, " ".join(str(err).split())[:120]
                count += 1
    return (first, count, msg) if count else None


def rig_problem(paths: Sequence[Path]) -> str | None:
    """The first camera-rig mismatch among episode files (one line naming both files),
    or None when they share one rig (unreadable files are skipped: reported elsewhere)."""
    checker = RigChecker(None)
    for p in paths:
        try:
            with EpisodeReader(p) as r:
                checker.add(r.meta)
        except DataError as e:
            if "mixed camera rigs" in str(e):
                return str(e)
    return None


# --------------------------------------------------------------------------- repair


@dataclass
class RepairReport:
    """Result of :func:`repair_dir`.

    Attributes:
        directory: the directory repaired.
        changes: one line per change made to the manifest (empty = nothing to repair).
        left_alone: one line per damaged or partial episode file (reported, untouched).
        listed: episodes the manifest lists afterwards.
    """

    directory: Path
    changes: list[str] = field(default_factory=list)
    left_alone: list[str] = field(default_factory=list)
    listed: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def repair_dir(directory: str | Path, *, lock: bool = True, fsync: bool = False) -> RepairReport:
    """Make the manifest of an episode directory agree with its finished files.

    The finished episode files are the truth (they are renamed into place before their
    manifest line is appended, so a crash in between leaves a file without its line).
    Unreadable (torn) lines are dropped, lines whose file is gone are dropped, repeated
    lines are reduced to the first, lines that disagree with their file (steps, seed,
    termination, ...) are rebuilt from it, and finished files without a line get one
    rebuilt from their attributes (:func:`~drive_il.data.storage.manifest_entry`).
    Damaged files and ``*.partial`` files are reported in ``left_alone`` and never
    touched; the line of a damaged file is kept. The manifest is rewritten atomically,
    and only when something changed.

    Args:
        directory: the episode directory.
        lock: hold the directory's writer lock (``False`` for a caller that holds it,
            e.g. :func:`drive_il.rollout.collect`).
        fsync: fsync the rewritten manifest.

    Raises:
        DataError: ``directory`` does not exist, another process is writing it, or the
            manifest cannot be rewritten (e.g. the disk is full).
    """
    d = Path(directory)
    list_episodes(d)  # DataError when missing
    if not lock:
        return _repair(d, fsync)
    with locked_directory(d):
        return _repair(d, fsync)


def _repair(d: Path, fsync: bool) -> RepairReport:
    rep = RepairReport(directory=d)
    man = d / MANIFEST_NAME
    files = list_episodes(d)
    for p in sorted(q for q in d.iterdir() if q.name.endswith(EPISODE_SUFFIX + PARTIAL_SUFFIX)):
        rep.left_alone.append(f"{p}: partial file left alone (an interrupted episode: resuming the collection "
                              "records it again; or delete it)")
    good: dict[str, Path] = {}
    cheap: dict[str, dict] = {}
    for p in files:
        try:
            with EpisodeReader(p) as r:
                if not r.meta.complete:
                    raise DataError(f"{p}: not finished by its writer (attribute complete is false)")
                cheap[p.name] = _cheap_entry(r.meta)
            good[p.name] = p
        except DataError as e:
            rep.left_alone.append(f"{e}; left alone")
    present = {p.name for p in files}
    entries, problems = read_manifest(d)
    rep.changes.extend(f"{pr}: dropped" for pr in problems)
    out: list[dict] = []
    seen: set[str] = set()
    for e in entries:
        name = e.get("file")
        if not isinstance(name, str) or name not in present:
            rep.changes.append(f"{man}: dropped the line of {name}, which is not in the directory")
            continue
        if name in seen:
            rep.changes.append(f"{man}: dropped a repeated line of {name}")
            continue
        seen.add(name)
        ref = cheap.get(name)
        if ref is not None:
            diff = [k for k in MANIFEST_KEYS if _entry_differs(e.get(k, _MISSING), ref[k])]
            if diff:
                what = ", ".join(f"{k} {_short_value(e.get(k, _MISSING))} -> {_short_value(ref[k])}" for k in diff)
                try:
                    e = {**e, **_full_entry(good[name])}
                    rep.changes.append(f"{man}: rebuilt the line of {name} from the file ({what})")
                except DataError as err:
                    rep.left_alone.append(f"{err}; left alone")
        out.append(e)
    for name in sorted(set(good) - seen):
        try:
            out.append(_full_entry(good[name]))
        except DataError as err:
            rep.left_alone.append(f"{err}; left alone")
            continue
        rep.changes.append(f"{man}: added the missing line of {name} (rebuilt from the file; "
                           "a crash between rename and manifest append?)")
    if rep.changes:
        try:
            write_manifest(d, out, fsync=fsync)
        except OSError as e:
            raise DataError(f"{man}: cannot rewrite the manifest ({e.strerror or e}); it was left as it was") from None
    rep.listed = len(out)
    return rep


_MISSING = object()


def _cheap_entry(meta: EpisodeMeta) -> dict:
    """The manifest keys the root attributes determine (MANIFEST_KEYS)."""
    return {
        "file": meta.path.name, "schema_version": int(meta.schema_version), "episode": int(meta.episode),
        "seed": int(meta.seed), "scenario": meta.scenario, "town": meta.town, "weather": meta.weather,
        "driver": meta.driver, "dagger_round": meta.dagger_round, "termination": meta.termination,
        "steps": int(meta.steps), "cameras": list(meta.camera_names),
    }


def _full_entry(p: Path) -> dict:
    with EpisodeReader(p) as r:
        try:
            return manifest_entry(r)
        except (KeyError, OSError, RuntimeError) as e:  # the step arrays: damaged after the header
            raise DataError(f"{p}: damaged episode file ({' '.join(str(e).split())[:160]})") from None


def _entry_differs(a, b) -> bool:
    if a is _MISSING:
        return True
    if isinstance(a, bool) or isinstance(b, bool):
        return a != b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return not math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=1e-12)
    return a != b


def _short_value(v) -> str:
    if v is _MISSING:
        return "(missing)"
    s = repr(v)
    return s if len(s) <= 40 else s[:37] + "..."


def format_repair(rep: RepairReport) -> list[str]:
    """The lines ``drive-il data repair`` prints: one per change, one per file left
    alone, then a summary line."""
    d = rep.directory
    tail = (f"{d}: repaired the manifest ({len(rep.changes)} change(s)); it lists {rep.listed} episode(s)"
            if rep.changed else f"{d}: manifest OK ({rep.listed} episode(s)), nothing to repair")
    if rep.left_alone:
        tail += f"; {len(rep.left_alone)} file(s) left alone"
    return [*rep.changes, *rep.left_alone, tail]
