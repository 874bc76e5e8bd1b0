"""Offline evaluation: a checkpoint's predictions on recorded expert episodes, against
the expert's labels, with no simulator (``drive-il eval --protocol offline --data DIR``).

The frames are those of the model's camera, preprocessed exactly as in training and
validation (no augmentation); the labels are the ones training uses (the expert's steer,
the route's path at the preset's ``path_distances``, the expert's target speed). What is
reported, per route command:

* ``steer_mae`` (steer units) and ``steer_error_deg`` (road-wheel angle [deg]): for a
  path head the steer is the pure pursuit along the predicted path at the frame's speed,
  as in training's metrics (:mod:`drive_il.training.losses`);
* ``path_lateral_mae`` [m] (a path head): |predicted - labelled| lateral offset, mean
  over the points;
* the **turn depth** table: frames binned by the label's size (a path head: |lateral
  offset| at the reference distance, the path distance nearest 5 m by default; other
  heads: |steer|), and per bin the mean |label|, mean |prediction|, their
  least-squares **gain** (``sum(p l) / sum(l^2)``, the slope through the origin: 1 = the
  label's size, < 1 a shallower turn than the expert's, i.e. under-steer, > 1 a deeper one)
  and the mean absolute error. In a turn's first frames the label is still small, so a
  gain > 1 in the smallest bins means turning early; a gain < 1 in the largest means
  under-steer in the turn itself;
* a speed head: ``speed_mae`` [m/s] over the frames with a label, the **standing** frames
  (label below :data:`~drive_il.data.tools.STAND_SPEED`, 0.3 m/s) where the prediction is
  at or above it (the learner would creep on where the expert stands) and the
  **start-off** frames (:func:`~drive_il.data.tools.starting_off`) where it is below it
  (the learner would stay where the expert leaves); the standing frames are also split by
  the expert's stop reason (``steps/stop_reason``: a red light, a vehicle, a walker;
  episodes of schema version 3), which says what the learner fails to stop for;
* an obstacle-gap head (``[output] obstacle_gap``): ``gap_mae`` [m] over the frames with
  a gap label (clipped to [0, gap_range], as in training) and over those with the label
  below :data:`NEAR_GAP` (where the cap acts; NaN in episodes older than schema version
  4, which have no gap labels); the standing and start-off figures above
  are then those of the **capped** target, what the driver asks for
  (:func:`drive_il.policies.speed.gap_speed_cap`), and ``standing_moving_share_uncapped``
  is the speed head's own;
* a stop-reason head (``[output] stop_reason_head``): over the frames whose reason is
  known, the share classified right and, per reason the expert gave, its frames and the
  share of them the head names (recall).

Offline errors are not driving: Codevilla et al., "On Offline Evaluation of Vision-based
Driving Models" (ECCV 2018) show that offline prediction error and closed-loop driving
quality can disagree, so these figures say *where* a learner errs (which command, which
part of a turn, standing or moving), and ``drive-il eval`` (closed loop) says how it
drives. Evaluate on episodes the model was not trained on (other towns, routes or seeds).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError

__all__ = ["PATH_BINS", "REFERENCE_DISTANCE", "STEER_BINS", "OfflineReport", "evaluate_offline", "format_offline",
           "offline_reports"]

REFERENCE_DISTANCE = 5.0
"""Default arc length [m] whose lateral offset sizes a path head's turn-depth bins (the
path distance nearest to it is used)."""
PATH_BINS = (0.0, 0.3, 1.0, 2.0, math.inf)
"""Bin edges of |label lateral offset| [m] of the turn-depth table (path heads)."""
STEER_BINS = (0.0, 0.05, 0.2, 0.5, math.inf)
"""Bin edges of |steer label| of the turn-depth table (1/r and ALVINN heads)."""
NEAR_GAP = 15.0
"""Gap labels below this [m] are "near" in the offline gap figures (the cap of the default
settings, 6 m stop distance and 2 m/s^2, is 6.0 m/s there)."""
_ORDER = ("LEFT", "RIGHT", "STRAIGHT", "LANEFOLLOW", "CHANGELANELEFT", "CHANGELANERIGHT")


@dataclass(frozen=True)
class CommandRow:
    """Errors of one route command (``command = "all"``: every frame)."""

    command: str
    frames: int
    steer_mae: float
    steer_error_deg: float
    path_lateral_mae: float = math.nan       # [m]; NaN without a path head


@dataclass(frozen=True)
class DepthRow:
    """One bin of the turn-depth table: frames of ``command`` whose label size lies in
    [lo, hi) (metres of lateral offset for a path head, steer units otherwise)."""

    command: str
    lo: float
    hi: float
    frames: int
    label_mean_abs: float
    pred_mean_abs: float
    gain: float                              # sum(p l) / sum(l^2)
    mae: float


@dataclass
class OfflineReport:
    """The result of :func:`evaluate_offline` (``to_dict()`` is its JSON)."""

    checkpoint: str
    data: list[str]
    episodes: int
    frames: int
    camera: str
    every: int
    output: str                              # the head: "path", or "native" (1/r, ALVINN)
    reference_distance: float                # [m] (path heads; NaN otherwise)
    rows: list[CommandRow] = field(default_factory=list)
    depth: list[DepthRow] = field(default_factory=list)
    speed: dict[str, float] = field(default_factory=dict)   # empty without a speed head
    # the standing frames by the expert's stop reason ("red_light", "vehicle", ...; "unknown"
    # in episodes older than schema version 3): {"frames", "moving_share", "pred_mean" [m/s]}
    standing_by_reason: dict[str, dict[str, float]] = field(default_factory=dict)
    # a stop-reason head: {"frames", "accuracy", "recall": {reason: {"frames", "recall"}}}
    stop_reason: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..rollout import jsonable
        return jsonable(asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OfflineReport:
        """The report back from :meth:`to_dict`'s JSON (``null`` -> NaN).

        Raises:
            KeyError, TypeError, ValueError: ``d`` is not an offline report's JSON.
        """
        def num(v: Any) -> float:
            return math.nan if v is None else float(v)

        rows = [CommandRow(str(r["command"]), int(r["frames"]), num(r["steer_mae"]), num(r["steer_error_deg"]),
                           num(r.get("path_lateral_mae"))) for r in d["rows"]]
        depth = [DepthRow(str(r["command"]), num(r["lo"]), num(r["hi"]) if r["hi"] is not None else math.inf,
                          int(r["frames"]), num(r["label_mean_abs"]), num(r["pred_mean_abs"]), num(r["gain"]),
                          num(r["mae"])) for r in d["depth"]]
        speed = {str(k): (int(v) if k.endswith("frames") else num(v)) for k, v in (d.get("speed") or {}).items()}
        by_reason = {str(r): {str(k): (int(v) if k == "frames" else num(v)) for k, v in row.items()}
                     for r, row in (d.get("standing_by_reason") or {}).items()}
        sr = d.get("stop_reason") or {}
        reason = ({"frames": int(sr["frames"]), "accuracy": num(sr["accuracy"]),
                   "recall": {str(r): {"frames": int(v["frames"]), "recall": num(v["recall"])}
                              for r, v in sr["recall"].items()}} if sr else {})
        return cls(str(d["checkpoint"]), [str(x) for x in d["data"]], int(d["episodes"]), int(d["frames"]),
                   str(d["camera"]), int(d["every"]), str(d["output"]), num(d["reference_distance"]),
                   rows, depth, speed, by_reason, reason)


def _depth_rows(command: str, label: np.ndarray, pred: np.ndarray, edges: Sequence[float]) -> list[DepthRow]:
    rows = []
    size = np.abs(label)
    for lo, hi in itertools.pairwise(edges):
        m = (size >= lo) & (size < hi)
        n = int(m.sum())
        if not n:
            continue
        lab, p = label[m], pred[m]
        den = float(np.sum(lab * lab))
        rows.append(DepthRow(command, float(lo), float(hi), n, float(np.abs(lab).mean()), float(np.abs(p).mean()),
                             float(np.sum(p * lab) / den) if den > 0 else math.nan, float(np.abs(p - lab).mean())))
    return rows


def evaluate_offline(checkpoint: str | Path, data: Sequence[str | Path], *, every: int = 1, batch_size: int = 256,
                     reference_distance: float = REFERENCE_DISTANCE, threads: int | None = None) -> OfflineReport:
    """Run a checkpoint on recorded episodes and compare with the expert's labels.

    Args:
        checkpoint: a run or checkpoint directory (:func:`drive_il.policies.checkpoint.load_checkpoint`).
        data: episode directories (``drive-il collect`` output); several are aggregated.
        every: use every N-th step of each episode (N >= 1).
        batch_size: frames per forward pass.
        reference_distance: [m] a path head's turn-depth bins use the lateral offset at the
            path distance nearest to this.
        threads: torch CPU threads while evaluating (None: leave as they are).

    Returns:
        The :class:`OfflineReport` (rows per command in the order LEFT, RIGHT, STRAIGHT,
        LANEFOLLOW, lane changes, then "all"; depth rows for LEFT and RIGHT, or for
        every command of a head without a path).

    Raises:
        ValueError: ``every`` < 1, ``batch_size`` < 1 or ``reference_distance`` <= 0.
        DataError: a directory missing, no finished episodes, the model's camera not in
            the data, a path head and episodes without a route, a speed head and no
            speed label.
        CheckpointError: an unreadable checkpoint, or the data's camera differs from the
            one the model was trained with (size, field of view, mount).
    """
    import torch
    from torch.utils.data import DataLoader

    from ..data.dataset import EpisodeDataset
    from ..data.tools import STAND_SPEED, command_name, starting_off
    from ..policies.checkpoint import check_camera_rig, load_checkpoint
    from ..policies.speed import gap_speed_cap, gap_target
    from ..types import STOP_REASON_UNKNOWN, stop_reason_name
    from .augment import SampleTransform
    from .data_source import label_options
    from .losses import make_loss
    from .trainer import BCDataset, _collate, predict_batches

    if int(every) < 1:
        raise ValueError(f"every: expected an integer >= 1, got {every!r}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size: expected an integer >= 1, got {batch_size!r}")
    if not reference_distance > 0:
        raise ValueError(f"reference_distance: expected a distance > 0 m, got {reference_distance!r}")
    dirs = [Path(d) for d in data]
    if not dirs:
        raise DataError("no episode directory given")
    for d in dirs:
        if not d.is_dir():
            raise DataError(f"{d}: data directory not found")
    policy, info = load_checkpoint(checkpoint)
    preset = info.preset
    out_cfg = preset.output
    cam = preset.preprocessing.camera
    labels = label_options(preset)
    path_d, speed_head = labels["path_distances"], labels["speed_labels"]
    n = int(every)
    ds = EpisodeDataset(dirs, cameras=(cam,), select=None if n == 1 else (lambda steps, meta: np.arange(meta.steps) % n == 0),
                        **labels)
    if len(ds) == 0:
        raise DataError(f"no frames in {', '.join(str(d) for d in dirs)}")
    check_camera_rig(info, [dict(ds.rig[cam], name=cam)], source=f"data ({dirs[0]})")
    rig = ds.rig[cam]
    reference = (float(rig.get("y", 0.0)), math.radians(float(rig.get("yaw_deg", 0.0))))
    samples = BCDataset(ds, SampleTransform(preset.preprocessing, None, reference=reference), augment=False)
    loss_fn = make_loss(policy)
    loader = DataLoader(samples, batch_size=int(batch_size), shuffle=False, num_workers=0, collate_fn=_collate)

    gap_head = bool(labels.get("gap_labels")) and speed_head
    reason_head = bool(labels.get("reason_labels")) and speed_head
    steer_p, steer_l, steer_deg, cmds, lat_p, lat_l, v_p, v_l, v_m, g_p, g_l, r_p, r_l = ([] for _ in range(13))
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        for batch, out, lo in predict_batches(policy, loss_fn, loader):
            steer_p.append(lo.steer.float().numpy())
            steer_l.append(batch["steer"].float().numpy())
            steer_deg.append(lo.steer_error_deg.float().numpy())
            cmds.append(batch["command"].numpy())
            lateral = out[0] if speed_head else out
            if path_d is not None:
                lat_p.append(lateral.float()[..., 1].numpy())
                lat_l.append(batch["path"].float()[..., 1].numpy())
            if speed_head:
                v_p.append(out[1].float().reshape(-1).numpy())
                v_l.append(batch["target_speed"].float().numpy())
                v_m.append(batch["speed"].float().numpy())
            if gap_head:
                g_p.append(out[2].float().reshape(-1).numpy())
                g_l.append(batch["obstacle_gap"].float().reshape(-1).numpy())
            if reason_head:
                r_p.append(out[3].argmax(dim=1).numpy())
                r_l.append(batch["stop_reason"].reshape(-1).numpy())
    finally:
        if threads:
            torch.set_num_threads(old_threads)

    sp, sl, sd, cm = (np.concatenate(a) for a in (steer_p, steer_l, steer_deg, cmds))
    lp = np.concatenate(lat_p) if lat_p else None
    ll = np.concatenate(lat_l) if lat_l else None
    names = np.array([command_name(int(c)) for c in cm])
    present = sorted(set(names.tolist()), key=lambda c: (_ORDER.index(c) if c in _ORDER else 99, c))
    k_ref = int(np.argmin([abs(d - reference_distance) for d in path_d])) if path_d else -1
    rep = OfflineReport(checkpoint=str(info.path), data=[str(d) for d in dirs], episodes=len(ds.episode_paths),
                        frames=len(sp), camera=cam, every=n, output="path" if path_d else str(out_cfg.kind),
                        reference_distance=float(path_d[k_ref]) if path_d else math.nan)
    for c in (*present, "all"):
        m = np.ones(len(sp), bool) if c == "all" else names == c
        rep.rows.append(CommandRow(c, int(m.sum()), float(np.abs(sp[m] - sl[m]).mean()), float(sd[m].mean()),
                                   float(np.abs(lp[m] - ll[m]).mean()) if lp is not None else math.nan))
    for c in present:
        if path_d is not None and c not in ("LEFT", "RIGHT"):
            continue
        m = names == c
        if path_d is not None:
            rep.depth += _depth_rows(c, ll[m, k_ref], lp[m, k_ref], PATH_BINS)
        else:
            rep.depth += _depth_rows(c, sl[m], sp[m], STEER_BINS)
    if speed_head:
        vp, vl, vm = np.concatenate(v_p), np.concatenate(v_l), np.concatenate(v_m)
        ok = np.isfinite(vl)
        if not ok.any():
            raise DataError(f"no speed labels (target_speed) in {', '.join(str(d) for d in dirs)}: the model has "
                            "a speed head; episodes recorded with schema version 2 or later carry them")
        stand = ok & (vl < STAND_SPEED)
        go = ok & starting_off(vm, vl)
        gap_figures: dict[str, float] = {}
        if gap_head:
            gp, gl = np.concatenate(g_p), np.concatenate(g_l)
            # (no labels in episodes of schema version 3 or older: the cap is still applied)
            gc, has = gap_target(gl, out_cfg.gap_range)
            near = has & (gc < NEAR_GAP)
            gap_figures = {"gap_frames": int(has.sum()),
                           "gap_mae": float(np.abs(gp[has] - gc[has]).mean()) if has.any() else math.nan,
                           "gap_near_frames": int(near.sum()),
                           "gap_near_mae": float(np.abs(gp[near] - gc[near]).mean()) if near.any() else math.nan,
                           "standing_moving_share_uncapped": (float((vp[stand] >= STAND_SPEED).mean())
                                                              if stand.any() else math.nan)}
            vp = np.minimum(vp, gap_speed_cap(gp, stop_distance=out_cfg.gap_stop_distance,
                                              deceleration=out_cfg.gap_deceleration))
        codes = ds.labels["stop_reason"]
        by_name: dict[str, list[int]] = {}   # the few codes present, by name (any unlisted code: "unknown")
        for c in np.unique(codes[stand]):
            by_name.setdefault(stop_reason_name(int(c)), []).append(int(c))
        masks = [(name, stand & np.isin(codes, cs)) for name, cs in by_name.items()]
        for name, m in sorted(masks, key=lambda nm: (-int(nm[1].sum()), nm[0])):   # most frames first
            rep.standing_by_reason[name] = {"frames": int(m.sum()), "moving_share": float((vp[m] >= STAND_SPEED).mean()),
                                            "pred_mean": float(vp[m].mean())}
        rep.speed = {
            "frames": int(ok.sum()),
            "speed_mae": float(np.abs(vp[ok] - vl[ok]).mean()),
            "standing_frames": int(stand.sum()),
            "standing_moving_share": float((vp[stand] >= STAND_SPEED).mean()) if stand.any() else math.nan,
            "standing_pred_mean": float(vp[stand].mean()) if stand.any() else math.nan,
            "start_off_frames": int(go.sum()),
            "start_off_staying_share": float((vp[go] < STAND_SPEED).mean()) if go.any() else math.nan,
            "moving_mae": float(np.abs(vp[ok & ~stand] - vl[ok & ~stand]).mean()) if (ok & ~stand).any() else math.nan,
            **gap_figures,
        }
    if reason_head:
        rp, rl = np.concatenate(r_p), np.concatenate(r_l)
        known = rl != STOP_REASON_UNKNOWN
        recall = {}
        for c in sorted(set(rl[known].tolist()), key=lambda c: -int((rl == c).sum())):   # most frames first
            m = rl == c
            recall[stop_reason_name(int(c))] = {"frames": int(m.sum()), "recall": float((rp[m] == c).mean())}
        rep.stop_reason = {"frames": int(known.sum()),
                           "accuracy": float((rp[known] == rl[known]).mean()) if known.any() else math.nan,
                           "recall": recall}
    return rep


def _num(v: float, fmt: str) -> str:
    return "-" if not math.isfinite(v) else fmt.format(v)


def format_offline(rep: OfflineReport) -> str:
    """The report as the text ``drive-il eval --protocol offline`` prints."""
    from ..data.tools import STAND_SPEED

    out = [(f"offline: {rep.checkpoint} on {', '.join(rep.data)}: {rep.episodes} episodes, {rep.frames} frames "
            f"(camera {rep.camera}, {'every step' if rep.every == 1 else f'1 step in {rep.every}'})")]
    path = rep.output == "path"
    out.append(f"{'command':<16} {'frames':>7} {'steer MAE':>9} {'steer err [deg]':>15}"
               + (f" {'path lateral MAE [m]':>20}" if path else ""))
    for r in rep.rows:
        out.append(f"{r.command:<16} {r.frames:>7d} {r.steer_mae:>9.3f} {r.steer_error_deg:>15.2f}"
                   + (f" {_num(r.path_lateral_mae, '{:.3f}'):>20}" if path else ""))
    if rep.depth:
        what = (f"|lateral offset| at {rep.reference_distance:g} m [m]" if path else "|steer|")
        out.append(f"turn depth (gain = sum(pred x label) / sum(label^2): < 1 shallower than the expert, > 1 deeper), "
                   f"binned by the label's {what}:")
        out.append(f"{'command':<16} {'bin':>11} {'frames':>7} {'|label|':>8} {'|pred|':>8} {'gain':>6} {'MAE':>7}")
        for d in rep.depth:
            hi = "inf" if not math.isfinite(d.hi) else f"{d.hi:g}"
            out.append(f"{d.command:<16} {f'{d.lo:g}-{hi}':>11} {d.frames:>7d} {d.label_mean_abs:>8.2f} "
                       f"{d.pred_mean_abs:>8.2f} {_num(d.gain, '{:.2f}'):>6} {d.mae:>7.3f}")
    s = rep.speed
    if s:
        out.append(f"speed: {s['frames']} labelled frames, MAE {s['speed_mae']:.2f} m/s (moving: "
                   f"{_num(s['moving_mae'], '{:.2f}')} m/s)")
        share = s["standing_moving_share"]
        out.append(f"  standing (label < {STAND_SPEED:g} m/s): {s['standing_frames']} frames, predicted >= "
                   f"{STAND_SPEED:g} m/s in {_num(100.0 * share, '{:.1f}')} % (would creep), mean prediction "
                   f"{_num(s['standing_pred_mean'], '{:.2f}')} m/s")
        known = {r: row for r, row in rep.standing_by_reason.items() if r != "unknown"}
        if known:
            out.append("  standing, by the expert's stop reason: " + "; ".join(
                f"{r} {row['frames']} frames, would creep {_num(100.0 * row['moving_share'], '{:.1f}')} %, "
                f"mean {_num(row['pred_mean'], '{:.2f}')} m/s" for r, row in known.items()))
        out.append(f"  start-off: {s['start_off_frames']} frames, predicted < {STAND_SPEED:g} m/s in "
                   f"{_num(100.0 * s['start_off_staying_share'], '{:.1f}')} % (would stay)")
        if "gap_mae" in s:
            out.append(f"obstacle gap: {s['gap_frames']} labelled frames, MAE {_num(s['gap_mae'], '{:.2f}')} m (label < "
                       f"{NEAR_GAP:g} m: {s['gap_near_frames']} frames, MAE {_num(s['gap_near_mae'], '{:.2f}')} m); "
                       f"the speed figures above are the target capped by the gap (the speed head alone: "
                       f"would creep in {_num(100.0 * s['standing_moving_share_uncapped'], '{:.1f}')} % of the "
                       f"standing frames)")
    r = rep.stop_reason
    if r:
        out.append(f"stop reason: {r['frames']} frames with a known reason, {_num(100.0 * r['accuracy'], '{:.1f}')} % "
                   "classified right; recall: " + "; ".join(
                       f"{name} {row['frames']} frames, {_num(100.0 * row['recall'], '{:.1f}')} %"
                       for name, row in r["recall"].items()))
    return "\n".join(out)


def offline_reports(run: str | Path) -> list[tuple[Path, OfflineReport]]:
    """The offline reports stored under RUN: every ``eval/offline-*.json`` in RUN or below
    it (``drive-il eval --protocol offline`` writes beside the checkpoint's run), in path
    order, with their paths.

    Raises:
        DataError: a file that is not valid JSON or not an offline report (one line naming it).
    """
    import json
    out = []
    for p in sorted(q for q in Path(run).rglob("offline-*.json") if q.parent.name == "eval"):
        try:
            out.append((p, OfflineReport.from_dict(json.loads(p.read_text()))))
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise DataError(f"{p}: not an offline report ({type(e).__name__}: {e})") from None
    return out
