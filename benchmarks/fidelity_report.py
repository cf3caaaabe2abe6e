"""The markdown of benchmarks/search_fidelity.py: standalone table, per-search rows, summaries, and
whether the teacher's paired gaps hold over seeds (what a second seed would add)."""
from __future__ import annotations

import json
import math
import statistics


def markdown(results: dict, args) -> str:
    lines = [f"# Search fidelity ({'quick' if args.quick else 'full'}; seeds {args.seeds})", ""]
    for name, t in results.items():
        reg = t["regime"]
        lines += [f"## {name}: {json.dumps(reg['task'])}, model {json.dumps(reg['model'])}, "
                  f"{reg['train']['steps']} steps x batch {reg['train']['batch_size']}", "",
                  "| candidate | standalone test acc (per seed) | mean | FLOPs | CPU seconds |", "|---|---|---|---|---|"]
        for l in t["ranking"]:
            runs = t["standalone"][l]
            lines.append(f"| {l} | {', '.join(format(r['test'], '.4f') for r in runs)} | {t['mean_test'][l]:.4f} | "
                         f"{t['flops'][l]:.3g} | {statistics.mean(r['cpu_seconds'] for r in runs):.0f} |")
        for mix, runs in (t.get("mixes") or {}).items():
            lines.append(f"| mix {mix} | {', '.join(format(r['test'], '.4f') for r in runs)} | "
                         f"{statistics.mean(r['test'] for r in runs):.4f} | {runs[0]['flops']:.3g} | "
                         f"{statistics.mean(r['cpu_seconds'] for r in runs):.0f} |")
        lines += ["", "| strategy | cost term | seed | pick | rank | retrained - best | within 1 pt | tau | "
                      "on Pareto front | search cost (x one training, CPU) | confidence |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in t["rows"]:
            lines.append(f"| {r['strategy']} | {r['cost_weight'] or '-'} | {r['seed']} | {r['pick']} | {r['rank']} | "
                         f"{r['delta']:+.4f} | {'yes' if r['within_1pt'] else 'no'} | {r['tau']} | "
                         f"{'yes' if r['pareto'] else 'no'} | {r['cost_x']:.2f} | {r.get('confidence', '-')} |")
        lines.append("")
    lines += ["## Summary per strategy (no cost term: within 1 pt; with a cost term: on the Pareto front)", "",
              "| strategy | within 1 pt | on Pareto front (cost term) | mean tau | mean cost (x) | max cost (x) | "
              "seeds agree (tasks) |", "|---|---|---|---|---|---|---|"]
    rows = [r for t in results.values() for r in t["rows"]]
    for s in dict.fromkeys(r["strategy"] for r in rows):
        plain = [r for r in rows if r["strategy"] == s and not r["cost_weight"]]
        cost = [r for r in rows if r["strategy"] == s and r["cost_weight"]]
        taus = [r["tau"] for r in plain if r["tau"] is not None]
        agree = [len(p) == 1 for t in results.values()
                 if (p := {r["pick"] for r in t["rows"] if r["strategy"] == s and not r["cost_weight"]})]
        lines.append(f"| {s} | {sum(r['within_1pt'] for r in plain)}/{len(plain)} | "
                     f"{sum(r['pareto'] for r in cost)}/{len(cost)} | "
                     f"{statistics.mean(taus) if taus else float('nan'):.2f} | "
                     f"{statistics.mean(r['cost_x'] for r in plain + cost):.2f} | "
                     f"{max(r['cost_x'] for r in plain + cost):.2f} | {sum(agree)}/{len(agree)} |")
    return "\n".join(lines + race_lines(results) + seed_gap_lines(results)) + "\n"


def race_lines(results: dict) -> list[str]:
    """teacher_race: per search, the race against the teacher (contenders' from-scratch gain over it)."""
    ledger = lambda r: f"{r['ledger_x']:.2f} / {r['cost_x']:.2f}" if r.get("ledger_x") else "-"  # noqa: E731
    rows = [f"| {name} | {r['seed']} | {r['cost_weight'] or '-'} | {r['race']} | {r['pick']} | {ledger(r)} |"
            for name, t in results.items() for r in t["rows"] if r.get("race")]
    if not rows:
        return []
    return ["## teacher_race: the race against the teacher (contender - teacher, utility, paired)", "",
            "| task | seed | cost term | race | pick | cost: its ledger / measured (x one training) |",
            "|---|---|---|---|---|---|", *rows, ""]


def seed_gap_lines(results: dict) -> list[str]:
    """Per task and student: the teacher's paired gap over it at each seed, and how far apart the two are
    in units of their combined paired error (|z| < 2: the one-seed error already covers the seed change)."""
    rows, within, total = [], 0, 0
    for name, t in results.items():
        by_seed = {r["seed"]: r.get("gaps") or {} for r in t["rows"] if r["strategy"] == "teacher" and not r["cost_weight"]}
        if len(by_seed) < 2:
            continue
        (s0, g0), (s1, g1) = sorted(by_seed.items())[:2]
        for arch in g0.keys() & g1.keys():
            (d0, e0), (d1, e1) = g0[arch], g1[arch]
            z = abs(d0 - d1) / math.hypot(e0, e1) if e0 or e1 else float("inf")
            within, total = within + (z < 2), total + 1
            rows.append(f"| {name} | {arch} | {100 * d0:+.1f} +-{100 * e0:.1f} | {100 * d1:+.1f} +-{100 * e1:.1f} | {z:.1f} |")
    if not rows:
        return []
    return ["## Teacher: the paired gaps (teacher - student, points) at two seeds", "",
            f"{within}/{total} gaps agree between the seeds within 2 combined paired errors.", "",
            "| task | student | seed 0 | seed 1 | apart (errors) |", "|---|---|---|---|---|", *rows, ""]


