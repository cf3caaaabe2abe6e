"""Where teacher_race's race decided (or confirmed) the pick, the recommendation's contrast between the
race's two sides is the race's paired comparison, not the smaller scoring slice's (made-up evidence)."""
from __future__ import annotations

from test_recommend import CANDS, LOC, SOFT, arch, codes, evidence

from nasgraph.search.recommend import recommend


def race(seed: int, defender: str, candidate: str, cand_score: float, def_score: float, se: float) -> dict:
    return {"stage": "race", "seed": seed, "defender": {n: [defender] for n in CANDS}, "defender_score": def_score,
            "races": [{"candidate": candidate, "score": cand_score, "diff": cand_score - def_score, "se": se,
                       "verdict": "challenger wins" if cand_score - def_score > 1.65 * se else "pick holds"}],
            "eval_n": 3200, "batches": 100}


def slice_tie(pick_scores, local_scores):
    """On the 300-example scoring slice softmax and the cheaper local are within noise, local ahead."""
    return [arch(SOFT, pick_scores, source="trial (race, from scratch)", eval_n=300),
            arch(LOC, local_scores, source="adapted from the teacher", eval_n=300)]


def test_a_race_win_is_the_contrast_with_the_old_pick_not_the_slices_tie():
    measured = slice_tie([0.70], [0.71])
    before = recommend(evidence([SOFT], measured))
    assert before.confidence == "weak" and "local ties it within noise" in before.headline   # the slice alone
    rec = recommend(evidence([SOFT], measured, stages=[race(0, "local", "softmax", 0.75, 0.70, 0.01)]))
    assert rec.pick.name == "softmax" and rec.runner_up.name == "local"
    assert rec.confidence == "moderate"
    assert "decided by the race: +5.0 pts +-1.0 pts over local on 100 paired held-out batches (3200 examples)" \
        in rec.headline
    assert abs(rec.margin - 0.05) < 1e-12 and abs(rec.margin_se - 0.01) < 1e-12
    assert not codes(rec) & {"outscored", "within_noise"}          # nothing tells the user to prefer local


def test_a_race_the_pick_held_confirms_it_and_a_tied_race_says_so():
    measured = [arch(LOC, [0.71], source="adapted from the teacher", eval_n=300),
                arch(SOFT, [0.70], source="trial (race, from scratch)", eval_n=300)]
    rec = recommend(evidence([LOC], measured, stages=[race(0, "local", "softmax", 0.60, 0.70, 0.01)]))
    assert rec.pick.name == "local" and "confirmed by the race: +10.0 pts +-1.0 pts over softmax" in rec.headline
    tied = recommend(evidence([LOC], measured, stages=[race(0, "local", "softmax", 0.705, 0.70, 0.01)]))
    assert "not separated by the race: -0.5 pts +-1.0 pts over softmax" in tied.headline
    assert tied.confidence == "moderate" and "within_noise" in codes(tied)   # the race's own gap, within noise


def test_a_race_the_pick_held_against_a_challenger_the_cap_cut_short_confirms_nothing():
    measured = [arch(LOC, [0.71], source="adapted from the teacher", eval_n=300),
                arch(SOFT, [0.70], source="trial (race, from scratch)", eval_n=300)]
    cut = {**race(0, "local", "softmax", 0.60, 0.70, 0.01), "steps": 22, "configured_steps": 45}
    rec = recommend(evidence([LOC], measured, stages=[cut]))
    assert rec.headline == recommend(evidence([LOC], measured)).headline     # the slice's tie, as without the race
    whole = recommend(evidence([LOC], measured, stages=[{**cut, "steps": 45}]))
    assert "confirmed by the race: +10.0 pts +-1.0 pts over softmax" in whole.headline
    won = recommend(evidence([SOFT], measured, stages=[{**race(0, "local", "softmax", 0.75, 0.70, 0.01),
                                                        "steps": 22, "configured_steps": 45}]))
    assert "decided by the race" in won.headline       # a win at fewer steps than designed still decides


def test_races_over_seeds_pool_and_a_race_not_between_the_pick_and_another_changes_nothing():
    measured = slice_tie([0.70, 0.72], [0.71, 0.73])
    stages = [race(0, "local", "softmax", 0.75, 0.70, 0.01), race(1, "local", "softmax", 0.73, 0.70, 0.02)]
    rec = recommend(evidence([SOFT, SOFT], measured, stages=stages))
    assert abs(rec.margin - 0.04) < 1e-12 and abs(rec.margin_se - (0.01 ** 2 + 0.02 ** 2) ** 0.5 / 2) < 1e-12
    assert "on 200 paired held-out batches (6400 examples)" in rec.headline
    other = [race(0, "linear", "local", 0.80, 0.70, 0.01)]       # linear defended against local: not the pick
    plain = recommend(evidence([SOFT], slice_tie([0.70], [0.71])))
    assert recommend(evidence([SOFT], slice_tie([0.70], [0.71]), stages=other)).headline == plain.headline
