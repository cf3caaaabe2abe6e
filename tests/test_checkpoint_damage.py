"""Damaged, foreign or torn checkpoints: one clean line naming the file and the fault, or a resume from the
intact previous one."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

from cli_checks import refused
from nasgraph.training.checkpoint import read_state
from run_fixtures import cli, copy_run, train_spec, trained  # noqa: F401 (fixtures)


def _damaged(kind: str, good: bytes, path: Path) -> None:
    """Write a damaged or foreign checkpoint of `kind` to `path` (`good`: a real one's bytes)."""
    import pickle
    import zipfile

    if kind in ("cut", "cut-end"):
        path.write_bytes(good[:700] if kind == "cut" else good[:-10])
    elif kind == "flipped":                                        # torch itself reads this one silently
        mid = len(good) // 2
        path.write_bytes(good[:mid] + bytes(b ^ 0xFF for b in good[mid:mid + 64]) + good[mid + 64:])
    elif kind == "zip":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("notes.txt", "hello")
    elif kind == "pickle-cut":
        path.write_bytes(pickle.dumps({"model": {"w": 1}}, protocol=2)[:12])
    elif kind == "tensor":
        torch.save(torch.zeros(3), path)
    elif kind in ("other-model", "other-size"):
        state = torch.load(io.BytesIO(good), weights_only=True)["model"]
        if kind == "other-model":
            state = {"w": torch.zeros(2)}
        else:
            name = sorted(state)[0]
            state[name] = torch.zeros(*[d + 1 for d in state[name].shape])
        torch.save({"model": state}, path)
    else:
        path.write_bytes(kind.encode())


@pytest.mark.parametrize("kind,what", [("", "empty file"), ("not a checkpoint\n", "neither a torch zip archive nor a"),
                                       ("cut", "truncated checkpoint"), ("cut-end", "was cut short"),
                                       ("flipped", "fails its CRC check"), ("zip", "not a torch checkpoint"),
                                       ("pickle-cut", "ends early"), ("tensor", "expected a state_dict"),
                                       ("other-model", "another model: "), ("other-size", "another size: ")])
def test_damaged_checkpoint_is_one_clean_line(trained, tmp_path, capsys, kind, what):
    """One whole line saying what is wrong: torch's messages were cut mid-sentence (\"...there is a high\"), a
    wrong model's showed the last line of torch's list only, and changed bytes loaded silently."""
    spec, run = trained
    bad = tmp_path / "bad.pt"
    _damaged(kind, (run / "checkpoints" / "last.pt").read_bytes(), bad)
    line = refused(capsys, ["export", spec, "--checkpoint", bad, "-o", tmp_path / "m.onnx"], "bad.pt", what,
                   keep=(bad,))
    assert "If you are seeing" not in line and not line.endswith((":", "(")), line


@pytest.mark.parametrize("kind,what", [("other-size", "another size: "), ("flipped", "fails its CRC check")])
def test_eval_and_resume_name_what_is_wrong_with_last_pt(trained, tmp_path, capsys, kind, what):
    _, run = trained
    run = copy_run(run, tmp_path / "run")
    good = (run / "checkpoints" / "last.pt").read_bytes()
    (run / "checkpoints" / "prev.pt").unlink(missing_ok=True)
    if kind == "flipped":
        _damaged(kind, good, run / "checkpoints" / "last.pt")
    else:                                                          # a full training state with other shapes
        state = torch.load(io.BytesIO(good), weights_only=True)
        name = sorted(state["model"])[0]
        state["model"][name] = torch.zeros(*[d + 1 for d in state["model"][name].shape])
        torch.save(state, run / "checkpoints" / "last.pt")
    refused(capsys, ["eval", run], "last.pt", what, keep=(run,))
    refused(capsys, ["train", run / "spec.yaml", "--out", run, "--resume", "--no-progress"], what, keep=(run,))


def test_eval_of_a_damaged_last_checkpoint_points_at_the_intact_previous_one(trained, tmp_path, capsys):
    _, run = trained
    run = copy_run(run, tmp_path / "run")
    (run / "checkpoints" / "last.pt").write_bytes(b"\0" * 100)
    line = refused(capsys, ["eval", run], "last.pt", keep=(run,))
    assert "prev.pt is intact" in line and "--resume" in line


def test_damaged_latest_checkpoint_resumes_from_the_previous_one(train_spec, tmp_path, capsys):
    assert cli(["train", train_spec, "--out", str(tmp_path / "full"), "--no-progress"]) == 0
    assert cli(["train", train_spec, "--out", str(tmp_path / "cut"), "--no-progress", "--set", "train.steps=6"]) == 0
    cut = tmp_path / "cut"
    (cut / "result.json").unlink()                                # as if killed right after the step-6 save
    ckpts = cut / "checkpoints"
    assert read_state(ckpts / "prev.pt")["step"] == 3
    ckpts.joinpath("last.pt").write_bytes(ckpts.joinpath("last.pt").read_bytes()[:500])   # torn latest
    capsys.readouterr()
    assert cli(["train", train_spec, "--out", str(cut), "--no-progress", "--resume", "--set", "train.steps=6"]) == 0
    err = capsys.readouterr().err
    assert "resuming from prev.pt (step 3)" in err and "Traceback" not in err
    assert read_state(ckpts / "last.pt")["step"] == 6 and read_state(ckpts / "prev.pt")["step"] == 3
    assert (ckpts / "last.pt.damaged").stat().st_size == 500




def test_a_killed_best_pt_write_leaves_nothing_after_the_next_open(tmp_path):
    """A kill inside atomic_write leaves checkpoints/.best.pt.<random>.tmp; the writer's next open removes it
    (only .last.pt.* was removed), a reader's open (clean=False) leaves it."""
    from nasgraph.training.checkpoint import Checkpoints

    folder = tmp_path / "checkpoints"
    folder.mkdir()
    stale = folder / ".best.pt.1a2b3c4d.tmp"
    stale.write_bytes(b"half a checkpoint")
    Checkpoints(folder, clean=False)
    assert stale.exists()
    Checkpoints(folder)
    assert list(folder.iterdir()) == []
