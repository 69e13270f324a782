# The ablation table of README "Which part of reality costs what": python results/lab_gap/ablation_trees/table.py results/lab_gap/ablation_trees
import json, os, sys
root = sys.argv[1]
gaps = ["lab", "hand_eye", "intrinsics", "latency", "arm", "objects", "table"]
print("| gap (dev, 2 per object) | " + " | ".join(f"`{t}` seen | `{t}` unseen | `{t}` s / trial | `{t}` failures" for t in ("drl_gan_vs", "vs_only")) + " |")
print("|---|" + "---|---|---:|---|" * 2)
for g in gaps:
    cells = []
    for t in ("drl_gan_vs", "vs_only"):
        f = os.path.join(root, t, g, "results.jsonl")
        if not os.path.exists(f):
            cells += ["–", "–", "–", "not run"]; continue
        rs = [json.loads(l) for l in open(f)]
        done = {s: [r for r in rs if r["object_set"] == s] for s in ("seen", "unseen")}
        n_exp = {"seen": 20, "unseen": 12}
        for s in ("seen", "unseen"):
            x = done[s]; k = sum(r["success"] for r in x)
            cells.append(f"{k}/{len(x)}" + ("" if len(x) == n_exp[s] else " (partial)"))
        cells.append(f"{sum(r['sim_time'] for r in rs) / len(rs):.1f}" if rs else "–")
        from collections import Counter
        c = Counter(r["failed_node"] or "(none)" for r in rs if not r["success"])
        strikes = sum(r.get("table_strikes", 0) for r in rs)
        cells.append((", ".join(f"{k} {v}" for k, v in c.most_common(3)) or "–") + (f"; {strikes} strikes" if strikes else ""))
    print(f"| {'all of `lab`' if g == 'lab' else '`lab_only_' + g + '`'} | " + " | ".join(cells) + " |")
