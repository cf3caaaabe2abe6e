"""The markdown summary of benchmarks/elastic_search.py's record."""
from __future__ import annotations


def _tau(name: str, a: dict) -> str:
    lo, hi = a["tau_ci95"]
    resolved = a["resolved_pairs"]
    return (f"- {name}: Kendall tau **{a['kendall_tau']:.2f}** over {a['n']} sub-networks (95% bootstrap over the "
            f"evaluation examples {lo:.2f} .. {hi:.2f}; two unrelated rankings: SD {a['null_tau_sd']:.2f}); "
            f"the standalone scores resolve {resolved} of {len(a['pairs'])} pairs (paired difference > 2 SE), "
            f"of which it orders {a['resolved_agree']} the same way")


def summary(r: dict) -> str:
    rk = r["ranking"]
    m = rk["metric"]
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    lines = [f"# Elastic search benchmark ({r['seconds']} s wall, {r['cpu_seconds']} s CPU of this process)", "",
             f"Size: {r['size']}", "", "## Ranking (target: Kendall tau >= 0.5)", "",
             _tau("supernet (shared weights)", rk["supernet"]),
             _tau(f"after a {r['size']['finetune']}-step fine-tune each", rk["finetuned"]), "",
             f"Scores: {m} on the first {rk['eval_n']} validation sequences.", "",
             f"| sub-network | FLOPs | supernet {m} | fine-tuned {m} | standalone {m} |", "|---|---|---|---|---|"]
    lines += [f"| {x['subnet']} | {x['flops']:.3g} | {x['supernet']:.4f} | {x['finetuned']:.4f} | {x['standalone']:.4f} |"
              for x in rk["rows"]]
    lines += ["", "Standalone pairs (i, j): difference, SE, resolved, supernet agrees:", ""]
    lines += [f"- ({q['i']},{q['j']}): {q['truth_diff']:+.4f} +- {q['truth_se']:.4f} "
              f"{'resolved' if q['resolved'] else 'not resolved'}, supernet {'agrees' if q['agree'] else 'disagrees'}"
              for q in rk["supernet"]["pairs"]]
    if "pick" not in r:
        return "\n".join(lines + ["", "(The search did not finish within this run: no pick, front or predictor "
                                       "check.)"]) + "\n"
    p, h, d, lat = r["pick"], r["hand"], r["pick_minus_hand"], r["latency"]
    err = lambda v: "n/a" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    lines += ["", "## Latency predictor (target: median error <= 10% on held-out sub-networks)", "",
              f"- {lat['fit_samples']} sub-networks timed to fit; held-out: the {len(lat['held_out'])} front points "
              f"outside them (timed after the search): median relative error **{err(lat['median_rel_error'])}**; "
              f"5-fold over the fit samples {err(lat['cv_median_rel_error'])}, leave-one-out "
              f"{err(lat['loo_median_rel_error'])}", ""]
    lines += [f"- {h['subnet']}: measured {h['ms']:.3f} ms, predicted {h['predicted']:.3f} ms" for h in lat["held_out"]]
    lines += ["", "## Pick vs hand-written spec at its latency", "",
              f"- hand-written {r['hand_spec']}: {h['latency_ms_measured']:.3f} ms measured beside the pick (the "
              f"search's budget, measured at its start: {h['budget_ms']:.3f} ms); test {m} "
              f"{mean(h['test']):.4f} (seeds: {', '.join(f'{x:.4f}' for x in h['test'])})",
              f"- searched pick `{p['subnet']}`: {p['latency_ms_measured']:.3f} ms measured "
              f"({p['latency_ms_predicted'] or float('nan'):.3f} predicted); test {m} {mean(p['test']):.4f} "
              f"(seeds: {', '.join(f'{x:.4f}' for x in p['test'])})",
              f"- pick - hand: {d['mean']:+.4f} +- {d['se']:.4f} (paired over test sequences, {d['seeds']} seed(s))"
              if d else "- pick - hand: not paired", "", "## Front (recommendation.json)", "",
              "| point | sub-network | score (shared) | ms pred. | ms meas. |", "|---|---|---|---|---|"]
    lines += [f"| {q['point']} | {q['label']} | {q[m]:.4f} | {q['latency_ms_predicted']:.3f} | "
              f"{q['latency_ms_measured']:.3f} |" for q in r["front"]]
    return "\n".join(lines) + "\n"
