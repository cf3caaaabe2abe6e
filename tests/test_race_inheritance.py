"""teacher_race's inheritance rule: a student counts against its type only when it inherits all of its
weights from the teacher; other types are untested by the teacher and race it whatever the pick."""
from __future__ import annotations

import json

from nasgraph.attention import registry
from nasgraph.search.strategies._race import contenders, share
from nasgraph.search.trials import inherited_fraction


def test_inherited_fraction_counts_the_parameters_a_student_takes_from_its_teacher():
    teacher = registry.build("softmax", d_model=16, n_heads=2, causal=True, max_len=12).state_dict()
    linear = registry.build("linear", d_model=16, n_heads=2, causal=True, max_len=12)
    gated = registry.build("gated_deltanet", d_model=16, n_heads=2, causal=True, max_len=12)
    assert inherited_fraction(linear, teacher) == 1.0
    own = sum(p.numel() for p in gated.parameters())
    new = sum(p.numel() for k, p in gated.named_parameters() if k not in teacher)   # gates, decays, beta
    assert new > 0 and abs(inherited_fraction(gated, teacher) - (own - new) / own) < 1e-12


def test_a_type_with_untrained_parameters_is_raced_not_ruled_out():
    students = [{"label": "linear", "utility": 0.50, "se": 0.01, "inherits": 1.0},       # 14 pts below: ruled out
                {"label": "gated", "utility": 0.50, "se": 0.01, "inherits": 0.925},      # as far below: no evidence
                {"label": "local", "utility": 0.63, "se": 0.02, "inherits": 1.0}]        # within noise
    found = contenders(0.64, students, inherit_min=1.0)
    assert [c["label"] for c in found] == ["gated", "local"]
    assert found[0]["why"] == "student inherits 92.5% of its weights, not evidence"
    assert found[1]["why"] == "student within noise of the teacher"


def test_a_share_reads_100_percent_only_when_it_is_all():
    assert (share(1.0), share(0.925), share(0.99996), share(0.2059)) == ("100%", "92.5%", "99.9%", "20.6%")


def test_a_wholly_inheriting_student_still_rules_its_type_out_and_only_untested_types_race_any_pick():
    students = [{"label": "linear", "utility": 0.50, "se": 0.01, "inherits": 1.0},
                {"label": "local", "utility": 0.63, "se": 0.02, "inherits": 1.0},
                {"label": "gated", "utility": 0.50, "se": 0.01, "inherits": 0.925}]
    # the pick keeps no layer of the teacher's type: the students' bias does not guard it, but an untested type races
    assert [c["label"] for c in contenders(0.64, students, 1.0, keeps_teacher=False)] == ["gated"]
    # a lower threshold counts the 92.5% student as evidence: the teacher's 14-point lead rules it out
    assert [c["label"] for c in contenders(0.64, students, inherit_min=0.9)] == ["local"]


def search_with_dcmha(tiny_spec, tmp_path, max_cost: str) -> dict:
    """A tiny teacher_race search whose pick keeps no softmax layer: every cheaper replacement is accepted
    (kl_tolerance huge), so the pick mixes linear and local; dcmha's student starts its dynamic-composition
    weights untrained (it inherits part of its weights from softmax). Returns the evidence."""
    from nasgraph.cli import main

    spec = tiny_spec("layer", "teacher_race", f", kl_tolerance: 100, margin: 1.0, max_cost: {max_cost}")
    spec.write_text(spec.read_text().replace("candidates: [softmax, linear, {local: {window: 4}}]",
                                             "candidates: [softmax, linear, {local: {window: 4}}, dcmha]")
                    .replace("seeds: [0], steps: 6,", "seeds: [0], steps: 20,"))
    assert main(["search", str(spec), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    return json.loads((tmp_path / "run" / "evidence.json").read_text())


def test_an_untested_type_races_a_pick_that_keeps_no_teacher_layer(tiny_spec, tmp_path):
    from nasgraph.report import race_lines

    ev, run = search_with_dcmha(tiny_spec, tmp_path, "null"), tmp_path / "run"
    (stage,) = [st for st in ev["stages"] if st["stage"] == "race"]
    assert "softmax" not in {l for ls in stage["defender"].values() for l in ls}
    assert [c["label"] for c in stage["contenders"]] == ["dcmha"]            # linear, local: not raced
    assert stage["inherits"]["linear"] == 1.0 and stage["inherits"]["dcmha"] < 1.0
    assert stage["contenders"][0]["why"].endswith("of its weights, not evidence")
    assert [r["candidate"] for r in stage["races"]] == ["dcmha"] and stage["steps"] == 10   # as long as the teacher
    assert (run / "trials" / "race-dcmha+dcmha-s0" / "budget10.json").exists()
    # whether it won or not, dcmha's score in the table is its from-scratch race, not its student's
    dcmha = next(m for m in ev["measured"] if m["labels"]["L0.attention"] == ["dcmha"] and m["kind"] == "homogeneous")
    assert dcmha["steps"] == 10 and "race" in dcmha["detail"]["source"]
    text = "\n".join(race_lines(json.loads((run / "recommendation.json").read_text()), markdown=False))
    assert "could not test" in text and "of its weights, not evidence" in text


def test_an_untested_type_the_cap_leaves_unraced_is_named_in_the_warning(tiny_spec, tmp_path, monkeypatch):
    import nasgraph.search.strategies._budget as budget
    from nasgraph.report import race_lines

    # deterministic costs: a step 1 CPU s, scoring free, one training (20 s) spent before the race
    monkeypatch.setattr(budget, "rate", lambda rec: 1.0)
    monkeypatch.setattr(budget, "steady_rate", lambda rec: 1.0)
    monkeypatch.setattr(budget, "per_example", lambda rec, n: 0.0)
    monkeypatch.setattr(budget.Ledger, "spent", lambda self: self.unit)
    ev = search_with_dcmha(tiny_spec, tmp_path, "1.05")          # 0.03 left: no per-layer student, no race fits
    (stage,) = [st for st in ev["stages"] if st["stage"] == "race"]
    # the pick is the teacher, so the types its students could not rule out contend too; the untested one first
    assert stage["verdict"] == "no race: max_cost reached" and stage["dropped"] == ["dcmha"]
    assert stage["deferred"] == ["linear", "local(window=4)"]       # tested: they would have shared its steps
    (warning,) = [st["warning"] for st in ev["stages"] if st["stage"] == "budget"]
    assert warning["code"] == "race_cut" and "untested" in warning["message"]
    # what the user can do: the max_cost that races it in full, from the same measured rates (here 20 s spent,
    # 10 race steps at 1 s, the 0.4 s reserve: 30.4 / 20 = 1.52 -> 1.6)
    assert warning["message"].startswith(f"dcmha untested (its student inherits {share(stage['inherits']['dcmha'])} "
                                         f"of its weights: not evidence), not raced, so the search has no evidence "
                                         f"on it: max_cost 1.6 would race it 10 steps; the race was cut")
    assert warning["fix"].startswith("raise max_cost to 1.6 ")
    rec = json.loads((tmp_path / "run" / "recommendation.json").read_text())
    (row,) = [a for a in rec["architectures"] if a["name"] == "dcmha"]
    assert row["source"] == "adapted, not evidence"          # its student's score, shown as no evidence
    assert stage["no_evidence"] == ["dcmha"]                  # unjudged: the confidence is at most weak, and says why
    assert rec["confidence"] == "weak" and "no evidence on dcmha" in rec["headline"]
    assert "dcmha (untested) not raced: max_cost; 1.6 would race all" in "\n".join(race_lines(rec, markdown=False))


def test_the_max_cost_the_warning_names_races_the_untested_type_in_full(tiny_spec, tmp_path, monkeypatch):
    import nasgraph.search.strategies._budget as budget

    monkeypatch.setattr(budget, "rate", lambda rec: 1.0)            # the same deterministic costs as above
    monkeypatch.setattr(budget, "steady_rate", lambda rec: 1.0)
    monkeypatch.setattr(budget, "per_example", lambda rec, n: 0.0)
    monkeypatch.setattr(budget.Ledger, "spent", lambda self: self.unit)
    ev = search_with_dcmha(tiny_spec, tmp_path, "1.6")
    (stage,) = [st for st in ev["stages"] if st["stage"] == "race"]
    assert [r["candidate"] for r in stage["races"]] == ["dcmha"] and stage["steps"] == 10
    assert not [st for st in ev["stages"] if st.get("warning", {}).get("code") == "race_cut"]


def test_an_inherit_min_outside_its_range_is_a_spec_error_at_load(tiny_spec, tmp_path, capsys):
    from nasgraph.cli import main

    spec = tiny_spec("layer", "teacher_race", ", inherit_min: 1.5")
    assert main(["search", str(spec), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "inherit_min" in err and "Traceback" not in err and not (tmp_path / "run").exists()
