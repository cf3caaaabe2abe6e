"""`nasgraph data listops`: LRA-format files, refusal to overwrite, clear errors."""
import csv

from nasgraph.cli import main
from nasgraph.tasks import load_task, parse_task
from nasgraph.tasks.listops import generate, lra_string

ARGS = ["--n", "40", "--min-len", "10", "--max-len", "50", "--max-depth", "4", "--seed", "7"]


def test_writes_lra_tsv_that_the_task_reads_back(tmp_path, capsys):
    out = tmp_path / "basic_train.tsv"
    assert main(["data", "listops", *ARGS, "-o", str(out)]) == 0
    assert "wrote 40 examples" in capsys.readouterr().out
    with open(out, newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    assert rows[0] == ["Source", "Target"] and len(rows) == 41
    expected = generate(40, min_len=10, max_len=50, max_depth=4, seed=7)
    assert rows[1:] == [[lra_string(t), str(v)] for t, v in expected]
    data = load_task(parse_task({"kind": "listops", "train_path": str(out), "max_len": 50, "n_val": 4,
                                 "n_test": 4}))
    assert sum(len(s) for s in data.splits.values()) == 40


def test_refuses_to_overwrite_without_force(tmp_path, capsys):
    out = tmp_path / "x.tsv"
    out.write_text("keep me")
    assert main(["data", "listops", *ARGS, "-o", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert out.read_text() == "keep me"
    assert main(["data", "listops", *ARGS, "-o", str(out), "--force"]) == 0
    assert out.read_text().startswith("Source\tTarget")


def test_impossible_bounds_and_bad_values_are_clear_errors(tmp_path, capsys):
    out = tmp_path / "x.tsv"
    assert main(["data", "listops", "--n", "5", "--min-len", "20", "--max-depth", "2", "-o", str(out)]) == 2
    assert "longest possible: 12" in capsys.readouterr().err
    assert main(["data", "listops", "--n", "0", "-o", str(out)]) == 2
    assert "--n must be >= 1, got 0" in capsys.readouterr().err
    assert main(["data", "listops", "--n", "5", "-o", str(tmp_path / "no" / "x.tsv")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert not out.exists()


def test_output_to_stdout_is_the_tsv_alone_whether_redirected_or_piped(tmp_path):
    """`-o /dev/stdout --force > file` (as root) renamed the TSV over the link /dev/stdout; with a pipe the
    summary line ended up inside the TSV. Now the TSV goes to stdout's own stream, the summary to stderr."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    argv = [sys.executable, "-m", "nasgraph", "data", "listops", *ARGS, "-o", "/dev/stdout"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    target = tmp_path / "redirected.tsv"
    with open(target, "wb") as fh:
        proc = subprocess.run(argv, stdout=fh, stderr=subprocess.PIPE, env=env, timeout=120)
    assert proc.returncode == 0 and "wrote 40 examples" in proc.stderr.decode(), proc.stderr
    piped = subprocess.run(argv, capture_output=True, env=env, timeout=120)
    assert piped.returncode == 0 and piped.stdout == target.read_bytes()
    rows = target.read_text().splitlines()
    assert rows[0] == "Source\tTarget" and len(rows) == 41 and os.path.islink("/dev/stdout")
