"""Clearing campaign report: ``clearing.json`` and ``clearing.md`` from ``results.jsonl`` alone.

Per tree: objects cleared (out of the camera's start view) and placed (in the bin) with Wilson
95 % intervals over objects, picks attempted and placed (Wilson over picks), failed picks by
node, objects knocked off the table, table strikes, simulated time and picks per hour of
simulated time (objects placed / simulated hours); per scene the same counts.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.campaigns.report import RESULTS, read_results
from app.campaigns.stats import wilson_interval

DEX_NET_PICKS_PER_HOUR = 300  # Dex-Net 4.0's figure on a real robot (issue 13's target)


def _errored(r: dict[str, Any]) -> dict[str, Any]:
    """A clearing run the simulator stopped (a compliant object's instability): every object
    counts as left on the table, the reason as the end."""
    n = len(r["scene_objects"])
    return {**r, "objects": n, "n_cleared": 0, "n_placed": 0, "picks_attempted": 0, "picks_placed": 0,
            "pick_failures": {r.get("failed_node") or "(simulation)": 1}, "off_table": [],
            "sim_time": float(r.get("sim_time") or 0.0), "picks_per_hour": 0.0,
            "end": f"stopped: {r.get('reason', '')}", "success": False}


def build_clearing(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The clearing summary of the clear_table records among ``records`` (pure)."""
    mine = [r if "picks_attempted" in r else _errored(r) for r in records
            if "picks_attempted" in r or (r.get("scene_objects") and "error" in (r.get("outcome"), r.get("tree_outcome")))]
    trees: dict[str, Any] = {}
    for tree in dict.fromkeys(r["tree"] for r in mine):
        rs = sorted((r for r in mine if r["tree"] == tree), key=lambda r: r["trial"])
        n_obj = sum(r["objects"] for r in rs)
        cleared, placed = sum(r["n_cleared"] for r in rs), sum(r["n_placed"] for r in rs)
        picks, placed_picks = sum(r["picks_attempted"] for r in rs), sum(r["picks_placed"] for r in rs)
        sim = sum(r["sim_time"] for r in rs)
        failures = Counter()
        for r in rs:
            failures.update(r.get("pick_failures", {}))
        trees[tree] = {
            "scenes": len(rs), "objects": n_obj, "objects_cleared": cleared, "objects_placed": placed,
            "cleared_rate": cleared / n_obj if n_obj else 0.0, "cleared_ci95": list(wilson_interval(cleared, n_obj)),
            "placed_rate": placed / n_obj if n_obj else 0.0, "placed_ci95": list(wilson_interval(placed, n_obj)),
            "picks_attempted": picks, "picks_placed": placed_picks,
            "pick_success_ci95": list(wilson_interval(placed_picks, picks)) if picks else [0.0, 1.0],
            "failures_by_node": dict(failures.most_common()),
            "off_table": sum(len(r.get("off_table", [])) for r in rs),
            "table_strikes": sum(r.get("table_strikes", 0) for r in rs),
            "scenes_fully_cleared": sum(bool(r["success"]) for r in rs),
            "sim_time_s": round(sim, 1), "picks_per_hour": round(placed / (sim / 3600.0), 1) if sim > 0 else 0.0,
            "per_scene": [{"trial": r["trial"], "seed": r["seed"], "objects": r.get("scene_objects", []),
                           "cleared": r["n_cleared"], "placed": r["n_placed"], "picks": r["picks_attempted"],
                           "failures": r.get("pick_failures", {}), "off_table": r.get("off_table", []),
                           "table_strikes": r.get("table_strikes", 0), "sim_time_s": round(r["sim_time"], 1),
                           "picks_per_hour": r["picks_per_hour"], "end": r.get("end", "")} for r in rs]}
    first = mine[0] if mine else {}
    return {"trees": trees, "config": {"seed": first.get("base_seed"), "domain": first.get("domain"),
                                       "scene": first.get("scene"), "domain_sha256": first.get("domain_sha256")},
            "targets": {"cleared_rate": 0.90, "picks_per_hour": DEX_NET_PICKS_PER_HOUR, "table_strikes": 0,
                        "off_table": 0}}


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def clearing_markdown(summary: dict[str, Any]) -> str:
    """``clearing.md``: totals against the targets, then one row per scene."""
    c = summary["config"]
    lines = [f"# Clearing campaign (scene {c['scene']}, domain {c['domain']}, seed {c['seed']})", ""]
    for tree, v in summary["trees"].items():
        lo, hi = v["cleared_ci95"]
        plo, phi = v["pick_success_ci95"]
        lines += [f"## {tree}", "",
                  "| measure | value | target |", "|---|---|---|",
                  f"| objects cleared | {v['objects_cleared']}/{v['objects']} ({_pct(v['cleared_rate'])}, "
                  f"95 % CI {_pct(lo)}–{_pct(hi)}) | ≥ 90 % |",
                  f"| objects placed in the bin | {v['objects_placed']}/{v['objects']} ({_pct(v['placed_rate'])}) | |",
                  f"| picks attempted / placed | {v['picks_attempted']} / {v['picks_placed']} "
                  f"(95 % CI {_pct(plo)}–{_pct(phi)}) | |",
                  f"| scenes fully cleared | {v['scenes_fully_cleared']}/{v['scenes']} | |",
                  f"| picks per hour of simulated time | {v['picks_per_hour']:.0f} ({v['sim_time_s']:.0f} s simulated) "
                  f"| ≥ {DEX_NET_PICKS_PER_HOUR} |",
                  f"| table strikes | {v['table_strikes']} | 0 |",
                  f"| objects knocked off the table | {v['off_table']} | 0 |", "",
                  "Failed picks by node: " + (", ".join(f"{k} {n}" for k, n in v["failures_by_node"].items()) or "none"),
                  "", "| scene | seed | objects | cleared | placed | picks | failures | sim s | picks/h | end |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for s in v["per_scene"]:
            fails = ", ".join(f"{k} {n}" for k, n in s["failures"].items()) or "-"
            lines.append(f"| {s['trial']} | {s['seed']} | {', '.join(s['objects'])} | {s['cleared']} | {s['placed']} | "
                         f"{s['picks']} | {fails} | {s['sim_time_s']} | {s['picks_per_hour']:.0f} | {s['end']} |")
        lines.append("")
    return "\n".join(lines)


def summarize_clearing(out: str | Path) -> dict[str, Any] | None:
    """Write ``clearing.json`` and ``clearing.md`` when ``out``'s results hold clear_table runs."""
    out = Path(out)
    records, _ = read_results(out / RESULTS)
    if not any("picks_attempted" in r for r in records):
        return None
    summary = build_clearing(records)
    (out / "clearing.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "clearing.md").write_text(clearing_markdown(summary))
    return summary
