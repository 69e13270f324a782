"""The README's results rows, printed from a campaign's ``summary.json`` and ``results.jsonl``.

Usage (from the repository root): ``python results/record_tables.py results/powered [results/paper_path ...]``

One markdown row per tree: grasped / trials per set with Wilson's 95 % interval, the difference
to ``oracle`` (Newcombe's 95 % interval, when the campaign has the oracle), table strikes, joint
limits or unreachable targets, the failing nodes counted, the mean simulated seconds per trial
and the paper's real-robot rate. Several folders print one table (their trees in order). Below
it, each tree paired trial for trial (same object, trial and seed) with the method
``drl_gan_vs``: the trials where exactly one of the two grasped, and the exact two-sided McNemar
test on them.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any


def _pct(x: float) -> str:
    """A rate (0–1) as whole percent."""
    return f"{100 * x:.0f}"


def _cell(s: dict[str, Any]) -> str:
    """``k/n = r % (lo–hi)`` for one tree and set."""
    lo, hi = s["ci95"]
    return f"{s['successes']}/{s['trials']} = {_pct(s['rate'])} % ({_pct(lo)}–{_pct(hi)})"


def _diff(d: dict[str, Any] | None) -> str:
    """A difference to the oracle in points, with its interval."""
    if not d:
        return "–"
    lo, hi = d["ci95"]
    return f"{100 * d['difference']:+.1f} ({100 * lo:+.1f} to {100 * hi:+.1f})"


def records_of(folder: Path) -> list[dict[str, Any]]:
    """A campaign folder's trial records (``results.jsonl``)."""
    return [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines() if line.strip()]


def rows(folder: Path, records: list[dict[str, Any]]) -> list[str]:
    """The table rows of one campaign folder, given its trial records."""
    summary = json.loads((folder / "summary.json").read_text())
    out = []
    for tree, sets in summary["trees"].items():
        sim = [r["sim_time"] for r in records if r["tree"] == tree and r.get("sim_time") is not None]
        audit = summary.get("physical_audit", {}).get(tree, {})
        fails = summary.get("failures", {}).get(tree, {})
        vs = summary.get("vs_oracle", {}).get(tree, {})
        paper = [sets[s].get("paper_rate") for s in ("seen", "unseen") if s in sets]
        out.append("| " + " | ".join([
            f"`{tree}`",
            _cell(sets["seen"]) if "seen" in sets else "–",
            _cell(sets["unseen"]) if "unseen" in sets else "–",
            f"{_diff(vs.get('seen'))} / {_diff(vs.get('unseen'))}" if vs else "–",
            str(audit.get("table_strikes", "–")),
            str(audit.get("self_collisions_or_limits", "–")),
            ", ".join(f"{k} {v}" for k, v in fails.items()) or "–",
            f"{sum(sim) / len(sim):.1f}" if sim else "–",
            " / ".join("–" if p is None else f"{_pct(p)} %" for p in paper),
        ]) + " |")
    return out


def mcnemar(records: list[dict[str, Any]], tree: str, against: str = "drl_gan_vs") -> str | None:
    """``tree`` against ``against`` on the trials both ran: discordant pairs and the exact p.

    Args:
        records: One campaign's trial records (``results.jsonl`` rows).
        tree: The tree compared.
        against: The reference tree.

    Returns:
        A markdown line, or None when the two trees share no trial.
    """
    def key(r: dict[str, Any]) -> tuple[str, int, int]:
        return r["object"], r["trial"], r["seed"]

    ref = {key(r): bool(r["success"]) for r in records if r["tree"] == against}
    pairs = [(ref[key(r)], bool(r["success"])) for r in records if r["tree"] == tree and key(r) in ref]
    if not pairs:
        return None
    b = sum(1 for a, t in pairs if a and not t)  # the reference grasped, the tree did not
    c = sum(1 for a, t in pairs if t and not a)
    n = b + c
    # Exact binomial test of b against n / 2, two-sided (doubling the smaller tail, capped at 1).
    p = min(1.0, 2 * sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2 ** n) if n else 1.0
    return (f"- `{against}` against `{tree}`: {len(pairs)} paired trials, {n} discordant, "
            f"`{against}` wins {b}, `{tree}` wins {c}; exact McNemar p = {p:.3g}")


def main(folders: list[str]) -> None:
    """Print one table for the given campaign folders."""
    print("| tree | seen (95 % CI) | unseen, compliant (95 % CI) | vs `oracle`, points (Newcombe 95 %) seen / unseen "
          "| table strikes | limits / unreachable | failures by node | simulated s / trial | paper, real robot |")
    print("|---|---|---|---|---:|---:|---|---:|---|")
    records = {f: records_of(Path(f)) for f in folders}
    for f in folders:
        for row in rows(Path(f), records[f]):
            print(row)
    for f in folders:
        trees = list(dict.fromkeys(r["tree"] for r in records[f]))
        lines = [m for t in trees if t != "drl_gan_vs" and (m := mcnemar(records[f], t)) is not None]
        if lines:
            print(f"\nPaired with `drl_gan_vs` ({f}):")
            print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
