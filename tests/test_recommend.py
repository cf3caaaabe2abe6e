"""The recommendation's rules (confidence, warnings) on made-up evidence, and what `nasgraph search` writes."""
from __future__ import annotations

import json

from nasgraph.cli import main
from nasgraph.search.evidence import Evidence, Measured
from nasgraph.search.recommend import recommend

CANDS = {"L0.attention": ["softmax", "linear", "local"], "L1.attention": ["softmax", "linear", "local"]}
SOFT = {"L0.attention": [0], "L1.attention": [0]}
LIN = {"L0.attention": [1], "L1.attention": [1]}
LOC = {"L0.attention": [2], "L1.attention": [2]}
COST = {0: 100.0, 1: 60.0, 2: 50.0}


def arch(choice, scores, kind="homogeneous", **detail):
    labels = {n: [CANDS[n][i] for i in idx] for n, idx in choice.items()}
    return Measured(choice, labels, scores, sum(COST[i[0]] for i in choice.values()), 500, kind, detail)


def evidence(picks, measured=(), probabilities=None, seeds=None, **kw):
    return Evidence("test", "acc", "flops", (100.0, 200.0), CANDS, seeds or list(range(len(picks))), picks,
                    list(measured), 10.0, probabilities=probabilities, **kw)


def codes(rec):
    return {w.code for w in rec.warnings}


def test_flat_alphas_give_no_confident_pick_and_say_so():
    """The issue's case: probabilities 0.3377 / 0.3375 / 0.3249 are not a pick, and not a collapse."""
    flat = {"L0.attention": [[0.3377, 0.3375, 0.3248]], "L1.attention": [[0.3377, 0.3249, 0.3374]]}
    rec = recommend(evidence([SOFT], probabilities=[flat]))
    assert rec.confidence == "none" and not rec.confident
    assert rec.headline.startswith("no confident pick")
    assert "flat_alphas" in codes(rec) and "collapse" not in codes(rec)
    text = json.dumps(rec.to_json())
    assert "share" not in text and "100%" not in text
    assert all(not p["decided"] for p in rec.choice_points)


def test_clear_margin_and_agreeing_seeds_are_strong():
    measured = [arch(SOFT, [0.91, 0.90, 0.92]), arch(LIN, [0.62, 0.60, 0.61]), arch(LOC, [0.70, 0.72, 0.71])]
    rec = recommend(evidence([SOFT] * 3, measured))
    assert rec.confidence == "strong" and rec.pick.name == "softmax" and rec.runner_up.name == "local"
    assert rec.seeds_agreeing == 3 and abs(rec.margin - 0.20) < 1e-9
    assert not codes(rec) & {"seeds_disagree", "within_noise", "no_standalone_score", "one_seed"}


def test_disagreeing_seeds_are_reported():
    measured = [arch(SOFT, [0.91, 0.90, 0.92]), arch(LOC, [0.70, 0.72, 0.71])]
    rec = recommend(evidence([SOFT, SOFT, LOC], measured))
    assert rec.seeds_agreeing == 2 and rec.confidence in ("weak", "moderate")
    warn = next(w for w in rec.warnings if w.code == "seeds_disagree")
    assert "seed 2: local" in warn.message and "2/3" in warn.message


def test_half_the_seeds_is_no_pick():
    rec = recommend(evidence([SOFT, LOC], [arch(SOFT, [0.9, 0.9]), arch(LOC, [0.7, 0.72])]))
    assert rec.confidence == "none" and "seeds_disagree" in codes(rec)


def test_scores_within_noise_are_weak_with_what_to_change():
    measured = [arch(SOFT, [0.80, 0.70, 0.76]), arch(LIN, [0.78, 0.69, 0.74])]
    rec = recommend(evidence([SOFT] * 3, measured))
    assert rec.confidence == "weak"
    assert {"within_noise"} <= codes(rec)
    assert "search.seeds" in next(w.fix for w in rec.warnings if w.code == "within_noise")


def test_a_tie_broken_by_cost_is_moderate():
    measured = [arch(SOFT, [0.80, 0.78]), arch(LOC, [0.79, 0.80])]
    rec = recommend(evidence([LOC] * 2, measured))
    assert rec.pick.name == "local" and rec.confidence == "moderate"


def test_a_pick_outscored_at_no_more_cost_is_no_pick():
    measured = [arch(SOFT, [0.60, 0.61]), arch(LOC, [0.90, 0.91])]
    rec = recommend(evidence([SOFT] * 2, measured))
    assert rec.confidence == "none" and "outscored" in codes(rec)


def test_supernet_estimates_alone_are_at_most_weak():
    measured = [arch(SOFT, [0.95, 0.94], source="shared-weights"), arch(LIN, [0.50, 0.52], source="shared-weights")]
    rec = recommend(evidence([SOFT] * 2, measured))
    assert rec.confidence == "weak" and "no_standalone_score" in codes(rec)


def test_one_seed_uses_evaluation_noise_and_says_seeds_are_unknown():
    measured = [arch(SOFT, [0.90], eval_n=2000), arch(LOC, [0.70], eval_n=2000)]
    rec = recommend(evidence([SOFT], measured))
    assert rec.confidence == "moderate" and "one_seed" in codes(rec) and rec.margin_se > 0


def test_search_writes_recommendation_report_and_pareto_plot(tiny_spec, tmp_path, capsys):
    spec = tiny_spec("head", "fixed", ", derive: prune")
    spec.write_text(spec.read_text().replace("seeds: [0]", "seeds: [0, 1]"))
    run = tmp_path / "run"
    assert main(["search", str(spec), "--out", str(run), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "choice point" in out and "runner-up" in out and "evidence" in out
    rec = json.loads((run / "recommendation.json").read_text())
    assert rec["confidence"] in ("none", "weak", "moderate", "strong") and rec["pick"]["choice"]
    assert (rec["headline"].startswith("no confident pick") or rec["headline"].startswith("pick")) and rec["headline"] in out
    assert {a["name"] for a in rec["architectures"]} >= {"softmax", "linear", "local(window=4)"}
    report = (run / "report.md").read_text()
    assert "## Recommendation" in report and "## Unit scores" in report and "![pareto](pareto.png)" in report
    assert (run / "pareto.png").stat().st_size > 0
    assert json.loads((run / "evidence.json").read_text())["seeds"] == [0, 1]


def test_latency_table_gives_measured_latency_and_the_pareto_axis(tmp_path):
    from nasgraph.report import plot_pareto
    from nasgraph.search.objective import CostTable

    nodes = list(CANDS)
    latency = CostTable("latency", 1000.0, {n: [900.0, 300.0, 200.0] for n in nodes}, {n: "layer" for n in nodes},
                        {n: 2 for n in nodes})                         # microseconds, as the latency table gives
    measured = [arch(SOFT, [0.91, 0.90]), arch(LOC, [0.89, 0.90]), arch(LIN, [0.60, 0.62])]
    rec = recommend(evidence([LOC] * 2, measured), latency_table=latency)
    assert rec.pick.latency_ms == (1000 + 2 * 200) / 1000
    assert {a.name for a in rec.architectures if a.pareto} == {"local", "softmax"}
    out = plot_pareto(rec.to_json(), tmp_path / "pareto.png")
    assert out.stat().st_size > 0


def test_the_strategys_own_decision_and_per_seed_detail_lists_are_read():
    """Evidence.chosen (when a strategy sets it) is the pick; detail values may be one per seed."""
    measured = [arch(SOFT, [0.9, 0.9], scored=["one-shot", "one-shot"]), arch(LOC, [0.7, 0.7], scored=["one-shot"] * 2)]
    ev = evidence([LOC, LOC], measured)
    ev.chosen = SOFT
    rec = recommend(ev)
    assert rec.pick.name == "softmax" and rec.pick.source == "shared-weights" and rec.seeds_agreeing == 0
    assert rec.confidence == "none"     # no seed picked what the strategy decided


def test_decisive_weights_are_weak_evidence_and_a_collapse_is_named():
    moved = {"L0.attention": [[0.70, 0.20, 0.10]], "L1.attention": [[0.65, 0.25, 0.10]]}
    rec = recommend(evidence([SOFT, SOFT], probabilities=[moved, moved]))
    assert rec.confidence == "weak" and all(p["decided"] for p in rec.choice_points)
    assert {"collapse", "no_standalone_score"} <= codes(rec) and "flat_alphas" not in codes(rec)
    assert rec.choice_points[0]["runner_up"] == "linear" and abs(rec.choice_points[0]["gap"] - 0.5) < 1e-9


def test_a_pick_that_is_not_the_argmax_is_not_decided():
    """Perturbation-based selection can pick against the weights: the weights then do not back it."""
    moved = {"L0.attention": [[0.70, 0.20, 0.10]], "L1.attention": [[0.65, 0.25, 0.10]]}
    rec = recommend(evidence([LIN], probabilities=[moved]))
    assert not any(p["decided"] for p in rec.choice_points) and rec.confidence == "none"
    assert rec.choice_points[0]["runner_up"] == "softmax"


def test_a_lower_is_better_metric_reads_in_its_own_units(tmp_path, monkeypatch):
    """Bits per byte: the search scores -bpb (higher is better); the pick is the lowest bpb, and the
    table and the Pareto plot show bpb itself, labelled lower is better."""
    import matplotlib.axes

    from nasgraph.report import plot_pareto, recommendation_lines

    measured = [arch(SOFT, [-2.10, -2.12]), arch(LOC, [-2.40, -2.41]), arch(LIN, [-2.90, -2.88])]
    ev = Evidence("test", "-bits_per_byte", "flops", (100.0, 200.0), CANDS, [0, 1], [SOFT] * 2, measured, 10.0)
    rec = recommend(ev)
    assert rec.pick.name == "softmax" and rec.runner_up.name == "local"
    text = "\n".join(recommendation_lines(rec.to_json()))
    assert "bits_per_byte (lower is better)" in text and "2.11 +-" in text and "-2.11" not in text
    drawn, labels = [], {}
    errorbar, axes_set = matplotlib.axes.Axes.errorbar, matplotlib.axes.Axes.set

    def record_point(self, x, y, **kw):
        drawn.append(round(y, 3))
        return errorbar(self, x, y, **kw)

    def record_labels(self, **kw):
        labels.update(kw)
        return axes_set(self, **kw)

    monkeypatch.setattr(matplotlib.axes.Axes, "errorbar", record_point)
    monkeypatch.setattr(matplotlib.axes.Axes, "set", record_labels)
    assert plot_pareto(rec.to_json(), tmp_path / "pareto.png").stat().st_size > 0
    assert sorted(drawn) == [2.11, 2.405, 2.89]
    assert labels["ylabel"].startswith("bits_per_byte (lower is better)")
