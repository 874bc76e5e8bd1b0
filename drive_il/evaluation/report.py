"""``drive-il report RUN``: markdown with tables and PNG plots (matplotlib) of a DAgger run.

Reads only what the run wrote (``round_*/round.json``, ``round_*/eval/*.json``,
``bc_matched/``, ``train_eval/``) and writes ``RUN/report.md`` and ``RUN/plots/*.png``:

* the header: the run's :class:`~drive_il.pipeline.PipelineConfig` (``dagger.json``),
  one row per field with its doc line;
* autonomy, mean lateral deviation and interventions per km against the number of expert labels,
  per round, for DAgger, with behaviour cloning given the same number of expert labels;
* lateral deviation against distance along a test route for BC and the final DAgger
  policy;
* failure rate against route length (the compounding-error curve: the share of test
  episodes whose first intervention happened before a given distance);
* training town against test town, seen against unseen weather;
* the NoCrash table of every ``eval/nocrash-*.json`` in or below RUN (``drive-il eval
  --protocol nocrash``, :mod:`drive_il.evaluation.nocrash`); a directory with only those
  (the expert's, ``runs/<scenario>/expert``) gets a report of its NoCrash tables alone.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import DataError
from ..metrics import upgrade_keys
from ..pipeline import PipelineConfig, pipeline_from_record
from ..scenario import towns_label
from .nocrash import NoCrashReport, markdown_table
from .trace import collision_counts, timeout_counts

__all__ = ["write_report", "failure_curve", "pipeline_section", "nocrash_reports", "nocrash_section"]


def _load(p: Path) -> Any:
    return upgrade_keys(json.loads(p.read_text()))


def failure_curve(profiles: list[dict], lengths: np.ndarray) -> np.ndarray:
    """Share of episodes whose first intervention happened before each route length.

    Args:
        profiles: per-episode dicts with "s" (route distance [m]) and "intervention"
            (bool per sample), as written by evaluation.
        lengths: (K,) route lengths [m].

    Returns:
        (K,) failure rate in [0, 1]; an episode that ended before length L without an
        intervention counts as a success up to its end (censored: excluded beyond it).
    """
    firsts, ends = [], []
    for pr in profiles:
        s = np.asarray(pr["s"], float)
        it = np.asarray(pr["intervention"], bool)
        firsts.append(float(s[np.argmax(it)]) if it.any() else math.inf)
        ends.append(float(s.max()) if s.size else 0.0)
    out = np.zeros(len(lengths))
    for k, L in enumerate(lengths):
        at_risk = [f for f, e in zip(firsts, ends) if f <= L or e >= L]
        out[k] = (sum(f <= L for f in at_risk) / len(at_risk)) if at_risk else np.nan
    return out


def verdict(dagger: dict[str, float], bc: dict[str, float], *, weather: str) -> str:
    """One line comparing DAgger's final policy with BC given the same expert labels.

    DAgger is "ahead" when it is no worse on autonomy, interventions per km and mean
    |lateral deviation| and strictly better on at least one of them (Pareto
    dominance); "behind" in the mirrored case; otherwise "mixed".
    """
    keys = (("autonomy", +1), ("interventions_per_km", -1), ("lateral_deviation_mean", -1))
    better = [sgn * (dagger[k] - bc[k]) > 1e-9 for k, sgn in keys]
    worse = [sgn * (dagger[k] - bc[k]) < -1e-9 for k, sgn in keys]
    word = ("ahead of" if any(better) and not any(worse) else
            "behind" if any(worse) and not any(better) else
            "level with" if not any(better) and not any(worse) else "mixed against")
    return (f"**Verdict ({weather}, test routes):** DAgger is {word} behaviour cloning with the same number "
            f"of expert labels: autonomy {dagger['autonomy']:.2f} % vs {bc['autonomy']:.2f} %, interventions/km "
            f"{dagger['interventions_per_km']:.2f} vs {bc['interventions_per_km']:.2f}, mean |lateral deviation| "
            f"{dagger['lateral_deviation_mean']:.3f} m vs {bc['lateral_deviation_mean']:.3f} m.")


def intervention_section(evals: Sequence[tuple[str, Mapping[str, Any]]], weather: str) -> list[str]:
    """Markdown lines: for each (name, eval report dict), the interventions counted by
    kind and by command, from the report's ``interventions`` trace
    (:mod:`drive_il.evaluation.trace`); [] when no report has a trace (older runs)."""
    evals = [(n, e) for n, e in evals if e is not None and "interventions" in e]
    if not evals:
        return []
    L = ["", f"## Where the expert took over (test town, {weather})", "",
         "| policy | interventions | in a junction | by kind | by command |", "|---|---|---|---|---|"]
    for name, ev in evals:
        rows = list(ev["interventions"])

        def counts(key: str) -> str:
            c: dict[str, int] = {}
            for r in rows:
                c[str(r[key])] = c.get(str(r[key]), 0) + 1
            return ", ".join(f"{k} {v}" for k, v in sorted(c.items(), key=lambda kv: -kv[1])) or "-"

        L.append(f"| {name} | {len(rows)} | {sum(bool(r['junction']) for r in rows)} | {counts('kind')} | "
                 f"{counts('command')} |")
    L += ["", "Kinds compare the learner's mean steer with the expert's over the 1.5 s before the takeover "
          "(`drive-il eval --trace` prints each one)."]
    return L


def pipeline_section(pl: PipelineConfig | None) -> list[str]:
    """Markdown lines: the run's pipeline settings, one row per :class:`PipelineConfig`
    field (its ``[pipeline]`` key, value and doc line); [] without a record."""
    if pl is None:
        return []
    L = ["", "## Pipeline (`[pipeline]` / `drive-il dagger` flags)", "", "| key | value | meaning |", "|---|---|---|"]
    for f in dataclasses.fields(pl):
        v = getattr(pl, f.name)
        doc = f.metadata.get("doc", "").replace("|", "\\|")  # a Markdown table cell
        L.append(f"| `{f.name}` | {'-' if v is None else v} | {doc} |")
    return L


def nocrash_reports(run: str | Path) -> list[NoCrashReport]:
    """The NoCrash reports stored under RUN: every ``eval/nocrash-*.json`` in RUN or below
    it (``drive-il eval --protocol nocrash --checkpoint RUN/round_002/model/best`` writes
    beside that checkpoint), in path order.

    Raises:
        DataError: a file that is not valid JSON or not a NoCrash report (one line naming it).
    """
    out = []
    for p in sorted(q for q in Path(run).rglob("nocrash-*.json") if q.parent.name == "eval"):
        try:
            out.append(NoCrashReport.from_dict(json.loads(p.read_text())))
        except (ValueError, TypeError, AttributeError) as e:
            raise DataError(f"{p}: not a NoCrash report ({e})") from None
    return out


def nocrash_section(run: str | Path) -> list[str]:
    """Markdown lines: one NoCrash table per stored report (:func:`nocrash_reports`); []
    when the run has none."""
    lines: list[str] = []
    for rep in nocrash_reports(run):
        lines += markdown_table(rep)
        counts = collision_counts(list(rep.collisions))
        if counts:
            lines += ["", f"Collisions ({len(rep.collisions)}; `drive-il eval --protocol nocrash --trace` lists "
                      "them): " + "; ".join(counts), ""]
        if rep.timeouts:
            lines += ["", f"Timeouts ({len(rep.timeouts)}, each at its longest standstill): "
                      + "; ".join(timeout_counts(list(rep.timeouts))), ""]
    return lines


def _fmt(v: Any, nd: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def write_report(run: str | Path, sections: Sequence[str] = ()) -> Path:
    """Write ``RUN/report.md`` and ``RUN/plots/*.png``; returns the report path.

    ``sections``: more Markdown lines for the end of the report (the ``report`` command
    passes the offline evaluations', which this layer cannot read); a RUN with no DAgger
    round but NoCrash reports or ``sections`` gets an evaluation-only report.

    Raises:
        DataError: no finished round in RUN and nothing else to report.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = Path(run)
    rounds = [_load(p) for p in sorted(run.glob("round_*/round.json"))]
    nocrash = nocrash_section(run)
    if not rounds and (nocrash or sections):  # an evaluation-only directory (e.g. the expert's NoCrash run)
        out = run / "report.md"
        out.write_text("\n".join([f"# Evaluation report: {run}", *nocrash, *sections, ""]))
        return out
    if not rounds:
        raise DataError(f"{run}: no finished DAgger round (round_*/round.json), no NoCrash report "
                        f"(eval/nocrash-*.json) and no offline report (eval/offline-*.json); run drive-il dagger "
                        f"or drive-il eval first")
    cfg = _load(run / "dagger.json") if (run / "dagger.json").exists() else {}
    bc = _load(run / "bc_matched" / "bc.json") if (run / "bc_matched" / "bc.json").exists() else None
    weathers = list(rounds[-1]["eval"].keys())
    w0 = weathers[0]
    plots = run / "plots"
    plots.mkdir(exist_ok=True)
    labels = [r["total_labelled_frames"] for r in rounds]

    # 1. metrics against expert labels
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, key, title in zip(axes, ("autonomy", "lateral_deviation_mean", "interventions_per_km"),
                              ("autonomy [%]", "mean |lateral deviation| [m]", "interventions per km")):
        ys = [r["eval"][w0][key] for r in rounds]
        es = [r["eval"][w0].get(f"{key}_seed_std", 0.0) or 0.0 for r in rounds]
        ax.errorbar(labels, ys, yerr=es, marker="o", capsize=3, label="DAgger (round 0 = BC)")
        for r, x, y in zip(rounds, labels, ys):
            ax.annotate(str(r["round"]), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        if bc is not None:
            ax.errorbar([bc["frames"]], [bc["eval"][w0][key]], yerr=[bc["eval"][w0].get(f"{key}_seed_std", 0.0)],
                        marker="s", color="C3", capsize=3, label="BC, same number of expert labels")
        ax.set_xlabel("expert-labelled frames")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(plots / "rounds.png", dpi=110)
    plt.close(fig)

    # 2. lateral deviation along a route, and 3. failure rate against route length
    last_eval = _load(run / f"round_{rounds[-1]['round']:03d}" / "eval" / f"{w0}.json")
    bc_eval = _load(run / "bc_matched" / "eval" / f"{w0}.json") if bc is not None else None
    r0_eval = _load(run / "round_000" / "eval" / f"{w0}.json")
    ref = bc_eval or r0_eval
    ref_name = "BC (same labels)" if bc_eval else "BC (round 0)"
    fig, ax = plt.subplots(figsize=(10, 3.5))
    for ev, name, c in ((ref, ref_name, "C3"), (last_eval, f"DAgger round {rounds[-1]['round']}", "C0")):
        if ev["profiles"]:
            pr = ev["profiles"][0]
            ax.plot(pr["s"], pr["lateral"], color=c, label=name)
            s = np.asarray(pr["s"])
            it = np.asarray(pr["intervention"], bool)
            if it.any():
                ax.scatter(s[it], np.asarray(pr["lateral"])[it], color=c, s=6, alpha=0.5)
    thr = last_eval.get("threshold", 1.0)
    ax.axhline(thr, color="k", ls="--", lw=0.8)
    ax.axhline(-thr, color="k", ls="--", lw=0.8, label=f"intervention threshold +-{thr} m")
    ax.set_xlabel("distance along the route [m]")
    ax.set_ylabel("lateral deviation [m] (+ right)")
    ax.set_title(f"Lateral deviation on a test route ({last_eval['town']}, {w0}); dots: expert in control")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(plots / "lateral_deviation_along_route.png", dpi=110)
    plt.close(fig)

    max_len = max([max(p["s"]) for ev in (ref, last_eval) for p in ev["profiles"] if p["s"]] or [100.0])
    lengths = np.linspace(0, max_len, 60)
    fig, ax = plt.subplots(figsize=(6, 4))
    for ev, name, c in ((ref, ref_name, "C3"), (last_eval, f"DAgger round {rounds[-1]['round']}", "C0")):
        ax.plot(lengths, failure_curve(list(ev["profiles"]), lengths) * 100, color=c, label=name)
    ax.set_xlabel("route length [m]")
    ax.set_ylabel("episodes with an intervention [%]")
    ax.set_title("Failure rate against route length (compounding error)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(plots / "failure_vs_length.png", dpi=110)
    plt.close(fig)

    # markdown
    sc = cfg.get("scenario", {})
    ts = cfg.get("test_scenario", {})
    pl = pipeline_from_record(cfg["dagger"], source=str(run / "dagger.json")) if "dagger" in cfg else None
    L = [f"# DAgger report: {run}", ""]
    L.append(f"Training scenario **{sc.get('name', '?')}** on **{towns_label(sc.get('town', '?'), sc.get('towns', ()))}** "
             f"({sc.get('weather', '?')}); test on **{towns_label(ts.get('town', '?'), ts.get('towns', ()))}** "
             f"({', '.join(weathers)}). "
             + (f"Model `{pl.model}`, {pl.dagger_rounds} DAgger rounds, mode {pl.mode}, beta schedule "
                f"{pl.beta_schedule} (beta {pl.beta}), mixing per {pl.mixing}. " if pl else "")
             + f"Interventions: |lateral deviation| > "
             f"{last_eval.get('threshold', 1.0)} m, collision or off-road (DAVE-2); autonomy = (1 - interventions x 6 s / "
             f"elapsed s) x 100. Values: aggregate over all test episodes; +- the spread (std) over evaluation seeds.")
    L += pipeline_section(pl)
    L += ["", f"## Per round (test town, {w0})", "",
          "| round | beta | new frames | labelled (total) | autonomy [%] | interventions/km | mean \\|lateral deviation\\| [m] | "
          "p95 \\|lateral deviation\\| [m] | route completion [%] | collisions/km | disagreement | time [s] |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rounds:
        e = r["eval"][w0]
        L.append(f"| {r['round']} | {r['beta']:.3f} | {r['frames']} | {r['labelled_frames']} ({r['total_labelled_frames']}) | "
                 f"{_fmt(e['autonomy'])} +- {_fmt(e.get('autonomy_seed_std'))} | {_fmt(e['interventions_per_km'])} | "
                 f"{_fmt(e['lateral_deviation_mean'], 3)} | {_fmt(e['lateral_deviation_p95'], 3)} | {_fmt(e['route_completion'], 1)} | "
                 f"{_fmt(e['collisions_per_km'])} | {_fmt(e['disagreement_mean'], 3)} | {r['seconds']['total']:.0f} |")
    L += ["", "## Behaviour cloning against DAgger (same number of expert labels)", "",
          "| policy | weather | expert labels | autonomy [%] | interventions/km | mean \\|lateral deviation\\| [m] | p95 \\|lateral deviation\\| [m] | "
          "route completion [%] |", "|---|---|---|---|---|---|---|---|"]
    final = rounds[-1]
    for w in weathers:
        tag = "" if w == w0 else " (unseen)" if w in cfg.get("scenario", {}).get("test", {}).get("unseen_weathers", []) else ""
        if bc is not None and w in bc["eval"]:
            e = bc["eval"][w]
            L.append(f"| BC | {w}{tag} | {bc['frames']} | {_fmt(e['autonomy'])} +- {_fmt(e.get('autonomy_seed_std'))} | "
                     f"{_fmt(e['interventions_per_km'])} | {_fmt(e['lateral_deviation_mean'], 3)} | {_fmt(e['lateral_deviation_p95'], 3)} | "
                     f"{_fmt(e['route_completion'], 1)} |")
        e = final["eval"][w]
        L.append(f"| DAgger round {final['round']} | {w}{tag} | {final['total_labelled_frames']} | "
                 f"{_fmt(e['autonomy'])} +- {_fmt(e.get('autonomy_seed_std'))} | {_fmt(e['interventions_per_km'])} | "
                 f"{_fmt(e['lateral_deviation_mean'], 3)} | {_fmt(e['lateral_deviation_p95'], 3)} | {_fmt(e['route_completion'], 1)} |")
    tt = run / "train_eval" / "train_eval.json"
    if tt.exists():
        te = _load(tt)
        L += ["", "## Training town against test town", "",
              "| policy | split | town | weather | autonomy [%] | interventions/km | mean \\|lateral deviation\\| [m] |",
              "|---|---|---|---|---|---|---|"]
        for name, rows in te["policies"].items():
            for row in rows:
                L.append(f"| {name} | {row.get('split', '')} | {row['town']} | {row['weather']} | {_fmt(row['autonomy'])} | "
                         f"{_fmt(row['interventions_per_km'])} | {_fmt(row['lateral_deviation_mean'], 3)} |")
    if bc is not None:
        eb, ed = bc["eval"][w0], final["eval"][w0]
        L += ["", verdict(ed, eb, weather=w0)]
    L += intervention_section(((ref_name, ref), (f"DAgger round {rounds[-1]['round']}", last_eval)), w0)
    L += nocrash
    L += sections
    L += ["", "## Plots", "", "![metrics against expert labels](plots/rounds.png)", "",
          "![lateral deviation along a route](plots/lateral_deviation_along_route.png)", "",
          "![failure rate against route length](plots/failure_vs_length.png)", "",
          f"TensorBoard: `tensorboard --logdir {run / 'tb'}`", ""]
    out = run / "report.md"
    out.write_text("\n".join(L))
    return out
