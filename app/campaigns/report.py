"""Campaign reports: ``summary.json``, ``summary.md`` and figures, from ``results.jsonl`` alone."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app.campaigns.stats import newcombe_difference, wilson_interval
from app.episode import LIFT_FRACTION, PAPER_RADIUS_M
from app.errors import ConfigError
from app.outputs import atomic_save, atomic_write_text

RESULTS = "results.jsonl"
#: The paper's rates on the real robot (Pedersen et al. 2020, 3 trials per object).
PAPER_RATES = {"seen": {"vs_only": 0.17, "drl_gan": 0.10, "drl_gan_vs": 0.83},
               "unseen": {"vs_only": 0.39, "drl_gan": 0.11, "drl_gan_vs": 0.83}}
PAPER_LABELS = {"vs_only": "VS", "drl_gan": "DRL+GAN", "drl_gan_vs": "DRL+GAN+VS"}
TREE_ORDER = ("drl_gan_vs", "drl_gan", "vs_only", "vs_only_fixed_y", "drl_vs", "oracle")  # tables and figures
SET_ORDER = ("seen", "unseen")


# ------------------------------------------------------------------------------ summaries
def _ordered(names: Sequence[str], preferred: Sequence[str]) -> list[str]:
    unique = list(dict.fromkeys(names))
    return [n for n in preferred if n in unique] + sorted(n for n in unique if n not in preferred)


def build_summary(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The ``summary.json`` object of a campaign's results lines (pure)."""
    trees = _ordered([r["tree"] for r in records], TREE_ORDER)
    sets = _ordered([r["object_set"] for r in records], SET_ORDER)
    by_tree: dict[str, Any] = {}
    per_object: dict[str, Any] = {}
    for tree in trees:
        mine = [r for r in records if r["tree"] == tree]
        by_tree[tree] = {}
        for s in sets:
            rs = [r for r in mine if r["object_set"] == s]
            if rs:
                n, k, kp = len(rs), sum(bool(r["success"]) for r in rs), sum(bool(r["paper_success"]) for r in rs)
                by_tree[tree][s] = {"trials": n, "successes": k, "rate": k / n, "ci95": list(wilson_interval(k, n)),
                                    "paper_score_rate": kp / n, "paper_score_successes": kp,
                                    "paper_rate": PAPER_RATES.get(s, {}).get(tree),
                                    "regrasps": sum(int(r.get("regrasps") or 0) for r in rs),
                                    "reacquisitions": sum(int(r.get("reacquisitions") or 0) for r in rs),
                                    "static_blobs": sum(int(r.get("static_blobs") or 0) for r in rs)}
        objs = sorted({(r["object_set"], r["object_index"], r["object"]) for r in mine},
                      key=lambda o: (sets.index(o[0]), o[1]))
        per_object[tree] = {o: {"trials": sum(r["object"] == o for r in mine),
                                "successes": sum(r["object"] == o and bool(r["success"]) for r in mine),
                                "paper_score_successes": sum(r["object"] == o and bool(r["paper_success"])
                                                             for r in mine), "object_set": s}
                            for s, _, o in objs}
    shas = sorted({r["domain_sha256"] for r in records})
    gap_shas = sorted({r.get("gap_sha256") or "" for r in records})
    first = records[0] if records else {}
    index = {r["object"]: r["object_index"] for r in records}
    config = {"trees": trees, "object_sets": {s: sorted({r["object"] for r in records if r["object_set"] == s},
                                                        key=lambda o: (index[o], o)) for s in sets},
              "trials_per_object": 1 + max((r["trial"] for r in records), default=-1),
              "seed": first.get("base_seed"), "domain": first.get("domain"), "hardware": first.get("hardware"),
              "gap": first.get("gap"), "split": first.get("split"),
              "seed_rule": SEED_RULES.get(first.get("split"), SEED_RULES[None]),
              "paper_radius_m": PAPER_RADIUS_M, "total_trials": len(records)}
    return {"trees": by_tree, "per_object": per_object, "config": config,
            "domain_sha256": shas[0] if len(shas) == 1 else shas,
            "gap": first.get("gap"), "gap_sha256": gap_shas[0] if len(gap_shas) == 1 else gap_shas,
            "split": first.get("split"), "physical_audit": physical_audit(records, trees),
            "vs_oracle": _vs_reference(by_tree, "oracle"), "failures": _failures(records, trees),
            "raw_mask_fallbacks": _raw_mask_fallbacks(records, trees)}


SEED_RULES = {None: "sha256('SEED/OBJECT/TRIAL') (legacy stream, before the dev/test split), same for every tree",
              "dev": "even: sha256('dev/SEED/OBJECT/TRIAL'), same for every tree",
              "test": "odd: sha256('test/SEED/OBJECT/TRIAL'), same for every tree"}


def physical_audit(records: Sequence[dict[str, Any]], trees: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per tree: the physical audit's counts (:mod:`app.sim.audit`) over its trials.

    Trials recorded before the audit existed count as not audited.
    """
    out: dict[str, dict[str, Any]] = {}
    for tree in trees:
        rs = [r for r in records if r["tree"] == tree and "table_strikes" in r and "self_collisions_or_limits" in r]
        pushed = [float(r["object_pushed_m"]) for r in rs if r.get("object_pushed_m") is not None]  # not in clearing runs
        out[tree] = {"audited_trials": len(rs),
                     "table_strikes": sum(int(r["table_strikes"]) for r in rs),
                     "trials_with_table_strikes": sum(int(r["table_strikes"]) > 0 for r in rs),
                     "self_collisions_or_limits": sum(int(r["self_collisions_or_limits"]) for r in rs),
                     "object_pushed_m_median": float(np.median(pushed)) if pushed else None,
                     "object_pushed_m_max": max(pushed) if pushed else None,
                     "trials_object_pushed_over_1cm": sum(d > 0.01 for d in pushed)}  # 1 cm: a visible push
    return out


def _raw_mask_fallbacks(records: Sequence[dict[str, Any]], trees: Sequence[str]) -> dict[str, dict[str, int]]:
    """Trials per tree whose VS ended on D_Y's mask of the raw image (segmentation fallback)."""
    out = {}
    for tree in trees:
        raw = [r for r in records if r["tree"] == tree and r.get("mask_source") == "raw"]
        if raw:
            out[tree] = {"trials": len(raw), "successes": sum(bool(r["success"]) for r in raw)}
    return out


def _vs_reference(by_tree: dict[str, Any], ref: str) -> dict[str, Any]:
    """Each tree's rate minus ``ref``'s, per set, with Newcombe's 95 % interval."""
    out: dict[str, Any] = {}
    for tree, by_set in by_tree.items():
        for s, v in by_set.items():
            r = by_tree.get(ref, {}).get(s)
            if tree != ref and r:
                lo, hi = newcombe_difference(v["successes"], v["trials"], r["successes"], r["trials"])
                out.setdefault(tree, {})[s] = {"difference": v["rate"] - r["rate"], "ci95": [lo, hi]}
    return out


def _failures(records: Sequence[dict[str, Any]], trees: Sequence[str]) -> dict[str, dict[str, int]]:
    """Failed trials per tree, counted by failing node (most frequent first)."""
    out = {}
    for tree in trees:
        counts: dict[str, int] = {}
        for r in records:
            if r["tree"] == tree and not r["success"]:
                counts[r["failed_node"] or r["outcome"]] = counts.get(r["failed_node"] or r["outcome"], 0) + 1
        out[tree] = dict(sorted(counts.items(), key=lambda kv: -kv[1]))
    return out


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f} %"


def summary_markdown(summary: dict[str, Any], figures: Sequence[str]) -> str:
    """``summary.md``: rates per tree and set beside the paper's, differences to oracle, figures."""
    cfg = summary["config"]
    gap = summary.get("gap")
    gap_text = (f", physical gap `{gap}` (sha256 `{str(summary.get('gap_sha256'))[:12]}…`)" if gap
                else ", no physical gap (recorded before it existed)")
    split = summary.get("split")
    split_text = f", split `{split}`" if split else ", legacy seed stream (no dev/test split)"
    lines = ["# Evaluation campaign", "",
             f"{cfg['total_trials']} trials: {cfg['trials_per_object']} per object per tree, seed {cfg['seed']}"
             f"{split_text}, domain `{cfg['domain']}` (sha256 `{str(summary['domain_sha256'])[:12]}…`){gap_text}. "
             "Physics = object "
             f"≥ {LIFT_FRACTION * 100:.0f} % of the lift up and held; 4 cm score = gripper within "
             f"{PAPER_RADIUS_M * 100:.0f} cm horizontally of a good grasp as Close Gripper starts "
             "(ignores height and yaw). Paper = real robot, 3 trials per object (Pedersen et al. 2020).", "",
             "| Tree | Set | Trials | Grasped | Rate | 95 % CI (Wilson) | 4 cm score | Paper (real robot) |",
             "|---|---|---:|---:|---:|---|---:|---:|"]
    for tree, by_set in summary["trees"].items():
        label = f"{tree} ({PAPER_LABELS[tree]})" if tree in PAPER_LABELS else tree
        for s, v in by_set.items():
            lo, hi = v["ci95"]
            lines.append(f"| {label} | {s} | {v['trials']} | {v['successes']} | {_pct(v['rate'])} | "
                         f"{100 * lo:.0f}–{100 * hi:.0f} % | {_pct(v['paper_score_rate'])} | {_pct(v['paper_rate'])} |")
    if summary["vs_oracle"]:
        lines += ["", "Difference to `oracle` (Newcombe's 95 % interval):", "",
                  "| Tree | Set | Difference | 95 % CI |", "|---|---|---:|---|"]
        for tree, by_set in summary["vs_oracle"].items():
            for s, v in by_set.items():
                lo, hi = v["ci95"]
                lines.append(f"| {tree} | {s} | {100 * v['difference']:+.1f} pts | {100 * lo:+.1f} to {100 * hi:+.1f} |")
    lines += ["", "Per object (grasped / trials):", "", "| Object | Set | " + " | ".join(summary["per_object"]) + " |",
              "|---|---|" + "---:|" * len(summary["per_object"])]
    objects = {o: v["object_set"] for per in summary["per_object"].values() for o, v in per.items()}
    for o, s in objects.items():
        cells = [f"{v['successes']}/{v['trials']}" if (v := per.get(o)) else "–" for per in summary["per_object"].values()]
        lines.append(f"| {o} | {s} | " + " | ".join(cells) + " |")
    recoveries = [(tree, s, v) for tree, by_set in summary["trees"].items() for s, v in by_set.items()
                  if v.get("regrasps") or v.get("reacquisitions") or v.get("static_blobs")]
    if recoveries:
        lines += ["", "Recoveries (tree nodes \"Re-grasp\" and \"Reacquire Object\") and blobs rejected as fixed in "
                  "the image (\"Blob Moves With Scene?\"), summed over trials:", ""]
        lines += [f"- {tree} / {s}: {v['regrasps']} re-grasps, {v['reacquisitions']} re-acquisitions, "
                  f"{v.get('static_blobs', 0)} static blobs rejected" for tree, s, v in recoveries]
    audit = summary.get("physical_audit") or {}
    if any(v["audited_trials"] for v in audit.values()):
        lines += ["", "Physical audit (simulator contacts; app/sim/audit.py):", "",
                  "| Tree | Audited | Table strikes | Trials with strikes | Limits / unreachable | Object pushed "
                  "before closing, median / max | Pushed > 1 cm |", "|---|---:|---:|---:|---:|---|---:|"]
        for tree, v in audit.items():
            if v["audited_trials"]:
                pushed = ("-" if v["object_pushed_m_median"] is None else  # scene runs: no single object
                          f"{1000 * v['object_pushed_m_median']:.1f} / {1000 * v['object_pushed_m_max']:.1f} mm")
                lines.append(f"| {tree} | {v['audited_trials']} | {v['table_strikes']} | "
                             f"{v['trials_with_table_strikes']} | {v['self_collisions_or_limits']} | {pushed} | "
                             f"{v['trials_object_pushed_over_1cm']} |")
    lines += ["", "Failures by failing node:", ""]
    for tree, counts in summary["failures"].items():
        lines.append(f"- {tree}: " + (", ".join(f"{n} × {k}" for n, k in counts.items()) or "none"))
    fallbacks = summary.get("raw_mask_fallbacks") or {}
    if fallbacks:
        lines += ["", "Trials whose VS fell back to D_Y's mask of the raw image (D_X found no trackable blob):", ""]
        lines += [f"- {tree}: {v['trials']} trials, {v['successes']} grasped" for tree, v in fallbacks.items()]
    lines += [""] + [f"![{Path(f).stem}]({f})" for f in figures]
    return "\n".join(lines) + "\n"


def write_figures(records: Sequence[dict[str, Any]], summary: dict[str, Any], out: Path) -> list[str]:
    """PNG figures in ``out``: per-object successes per set (the paper's Figs. 8, 9), overall rates
    with their intervals, final pose errors per tree. Returns the file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    trees, names = list(summary["trees"]), []
    width = 0.8 / max(1, len(trees))  # bars of a group share 80 % of the slot
    for s, objects in summary["config"]["object_sets"].items():
        fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(objects) + 1), 4))  # inches: ~1 per object
        x = np.arange(len(objects))
        for i, tree in enumerate(trees):
            po = summary["per_object"][tree]
            ax.bar(x + (i - (len(trees) - 1) / 2) * width, [po.get(o, {}).get("successes", 0) for o in objects],
                   width, label=tree)
        ax.set_xticks(x, objects, rotation=45, ha="right")
        ax.set_ylabel("successful grasps")
        ax.set_ylim(0, summary["config"]["trials_per_object"])
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"Successes per object ({s} objects)")
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
        names.append(save_figure(fig, out, f"per_object_{s.replace(':', '_')}.png"))
    sets = list(summary["config"]["object_sets"])
    fig, ax = plt.subplots(figsize=(7.5, 4))
    for i, tree in enumerate(trees):
        xs = np.arange(len(sets)) + (i - (len(trees) - 1) / 2) * width
        v = [summary["trees"][tree].get(s) for s in sets]
        rate = np.array([c["rate"] if c else np.nan for c in v])
        err = np.array([[c["rate"] - c["ci95"][0], c["ci95"][1] - c["rate"]] if c else [0, 0] for c in v]).T
        ax.bar(xs, 100 * rate, width, yerr=100 * err, capsize=3, label=tree)
        paper = [PAPER_RATES.get(s, {}).get(tree) for s in sets]
        if any(p is not None for p in paper):
            labelled = "paper (real robot)" in ax.get_legend_handles_labels()[1]
            ax.plot(xs, [np.nan if p is None else 100 * p for p in paper], "k*", markersize=11, linestyle="none",
                    label=None if labelled else "paper (real robot)")
    ax.set_xticks(np.arange(len(sets)), sets)
    ax.set_ylabel("grasp success (%), 95 % Wilson interval")
    ax.set_ylim(0, 105)  # % with room for the interval caps
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    names.append(save_figure(fig, out, "rates.png"))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, scale, unit in ((axes[0], "position_m", 100, "horizontal error to nearest good grasp (cm)"),
                                 (axes[1], "yaw_deg", 1, "finger-line error to grasp axis (deg)")):
        data = [[scale * r["pose_error"][key] for r in records if r["tree"] == t
                 and r["pose_error"].get(key) is not None] for t in trees]
        ax.boxplot([d or [np.nan] for d in data], showfliers=True)
        ax.set_xticks(np.arange(1, len(trees) + 1), trees, rotation=20)
        ax.set_ylabel(unit)
        ax.set_ylim(bottom=0)
        if key == "position_m":
            ax.axhline(100 * PAPER_RADIUS_M, color="k", linestyle="--", linewidth=1, label="paper's 4 cm")
            ax.legend(fontsize="small")
    fig.suptitle("Final gripper pose error (as Close Gripper starts, else at the end)")
    names.append(save_figure(fig, out, "pose_errors.png"))
    return names


def save_figure(fig: Any, out: Path, name: str) -> str:
    """Lay out ``fig``, write it atomically as ``out/name`` (PNG), close it, return ``name``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    try:  # dpi: readable in a README at page width
        atomic_save(out / name, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    finally:
        plt.close(fig)
    return name


def read_results(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Whole lines of a results file and the byte length they span.

    A last line without its newline (a write cut by ``kill -9``) is left out; any other bad line
    or a trial present twice is an error.

    Raises:
        ConfigError: A damaged line before the last, or a duplicate trial.
    """
    if not path.exists():
        return [], 0
    data = path.read_bytes()
    records, seen, good = [], set(), 0
    lines = data.split(b"\n")
    for i, line in enumerate(lines[:-1]):  # the piece after the last newline is torn or empty
        try:
            rec = json.loads(line)
            key = (rec["tree"], rec["object"], rec["trial"])
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"{path}: line {i + 1} is damaged ({e}); only a torn last line is repaired") from e
        if key in seen:
            raise ConfigError(f"{path}: line {i + 1}: trial {key} appears twice")
        seen.add(key)
        records.append(rec)
        good += len(line) + 1
    return records, good


def summarize(out: str | Path) -> dict[str, Any]:
    """Rebuild ``summary.json``, ``summary.md`` and the figures of ``out`` from its results.jsonl.

    Raises:
        ConfigError: No results, or a damaged results file.
    """
    out = Path(out)
    records, _ = read_results(out / RESULTS)
    if not records:
        raise ConfigError(f"{out / RESULTS}: no results to summarize")
    summary = build_summary(records)
    figures = write_figures(records, summary, out)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    atomic_write_text(out / "summary.md", summary_markdown(summary, figures))
    return summary
