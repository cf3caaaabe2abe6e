"""`nasgraph generate` on careless input: huge --max-new-tokens (streams, Ctrl-C keeps the text, bounded
memory), --provider on a run folder, bad --threads, a step graph with --full-forward, a non-UTF-8 prompt."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_checks import refused
from nasgraph.cli import main
from nasgraph.errors import NasgraphError
from nasgraph.generation import generate, pick_token, stream
from nasgraph.tasks import CLS_ID

ROOT = Path(__file__).resolve().parents[1]
SPEC = """
name: lm
task: {kind: lm, path: text.txt, max_len: 12}
model: {d_model: 16, n_heads: 2, n_layers: 1, attention: softmax}
train: {steps: 2, batch_size: 8, eval_every: 2}
"""


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    """(run folder, exported .onnx) of a tiny byte LM, max_len 12."""
    w = tmp_path_factory.mktemp("gen")
    (w / "text.txt").write_text("the quick brown fox jumps over the lazy dog.\n" * 60)
    (w / "spec.yaml").write_text(textwrap.dedent(SPEC))
    assert main(["train", str(w / "spec.yaml"), "--out", str(w / "run"), "--no-progress"]) == 0
    assert main(["export", str(w / "run"), "-o", str(w / "lm.onnx"), "--no-progress"]) == 0
    return w / "run", w / "lm.onnx"


def nasgraph(*argv, env: dict | None = None, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "nasgraph", *argv], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kw)


def test_the_stream_keeps_a_bounded_context():
    """10,000 tokens past max_len 8: the same ids as before, windows of <= max_len, memory not growing with n."""
    seen = []

    def scorer(ids):                                          # next token = last + 1 (mod 50, above <cls>)
        seen.append(len(ids))
        out = np.zeros((len(ids), 60))
        out[-1, 2 + (ids[-1] - 1) % 50] = 1.0
        return out

    assert generate(scorer, [5], 6, max_len=8) == [6, 7, 8, 9, 10, 11]
    tracemalloc.start()
    count = sum(1 for _ in stream(scorer, [5], 10_000, max_len=8))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert count == 10_000 and max(seen) <= 8
    assert peak < 200_000, f"{peak} bytes traced: the context grows with the tokens"   # a 10k list alone: 80 kB+


def test_text_streams_the_same_continuation_as_json(lm, capsys):
    """Also --full-forward on a run folder (ignored before: it always decoded) gives the same text."""
    run, onnx = lm
    texts = []
    for model in (run, onnx, [run, "--full-forward"]):
        model = model if isinstance(model, list) else [model]
        args = ["generate", *map(str, model), "--prompt", "the qu", "--max-new-tokens", "40"]   # past max_len 12
        assert main(args) == 0
        text = capsys.readouterr()
        assert main(args + ["--json"]) == 0
        row = json.loads(capsys.readouterr().out)
        assert text.out == row["prompt"] + row["continuation"] + "\n"
        assert len(row["ids"]) == 40 and "context slides" in text.err
        texts.append(text.out)
    assert len(set(texts)) == 1, texts


def test_ctrl_c_keeps_what_was_generated(lm):
    """A huge --max-new-tokens streams; SIGINT stops it with the text so far, exit 130, one note."""
    run, _ = lm
    proc = nasgraph("generate", str(run), "--max-new-tokens", str(10 ** 15))
    first = proc.stdout.read(64)                              # blocks until 64 bytes of text have streamed
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=60)
    out, err = first + rest, err.decode()
    assert proc.returncode == 130, err
    assert out.endswith(b"\n") and len(out) >= 64 and "Traceback" not in err
    out.decode("utf-8")                                       # whole characters (invalid bytes as U+FFFD)
    assert [l for l in err.splitlines() if "interrupted" in l] == [next(l for l in err.splitlines()
                                                                       if "interrupted after" in l)]


def test_ctrl_c_with_json_prints_the_ids_so_far(lm):
    run, _ = lm
    proc = nasgraph("generate", str(run), "--max-new-tokens", "10000000", "--json")
    while proc.poll() is None and "context slides" not in (note := proc.stderr.readline().decode()):
        pass                                                  # the model is open: tokens are coming
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    row = json.loads(out)
    assert proc.returncode == 130 and row["interrupted"] is True and 0 < len(row["ids"]) < 10_000_000, err


@pytest.mark.parametrize("extra, names", [
    (["--provider", "foo"], ["provider 'foo'", "cpu, cuda"]),
    (["--threads", "-1"], ["--threads", "-1"]),
    (["--threads", "0"], ["--threads"]),
    (["--max-new-tokens", str(10 ** 9), "--json"], ["--json", "10,000,000"]),
])
def test_bad_options_on_a_run_folder(lm, capsys, extra, names):
    """--provider was ignored for a run folder; --threads -1 ended in torch's traceback."""
    run, _ = lm
    refused(capsys, ["generate", run, *extra], *names, keep=(run,))


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_provider_cuda_on_a_run_folder_without_cuda_is_refused(lm, capsys):
    run, _ = lm
    refused(capsys, ["generate", run, "--provider", "cuda"], "--provider cuda", "no CUDA device", keep=(run,))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_provider_cuda_on_a_run_folder_runs_on_the_gpu_with_the_cpu_text(lm, capsys):
    run, _ = lm
    args = ["generate", str(run), "--prompt", "the qu", "--max-new-tokens", "30", "--json"]
    assert main(args) == 0
    cpu = json.loads(capsys.readouterr().out)
    assert main(args + ["--provider", "cuda"]) == 0
    assert json.loads(capsys.readouterr().out) == cpu


def test_full_forward_on_a_step_graph_is_refused(lm, capsys):
    """It ended in onnxruntime's 'Required inputs ... are missing' traceback."""
    _, onnx = lm
    step = onnx.with_name("lm.step.onnx")
    refused(capsys, ["generate", step, "--full-forward"], "lm.step.onnx", "step graph", keep=(onnx.parent,))


def test_a_non_utf8_prompt_prints_on_a_strict_terminal(lm, monkeypatch):
    """A prompt with invalid UTF-8 bytes (argv: lone surrogates) ended in UnicodeEncodeError on a strict
    UTF-8 stdout (a terminal under a UTF-8 locale)."""
    import io

    run, _ = lm
    for extra in ([], ["--json"]):
        out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
        monkeypatch.setattr(sys, "stdout", out)
        assert main(["generate", str(run), "--prompt", "th\udcff", "--max-new-tokens", "3", *extra]) == 0
        out.flush()
        assert "th\ufffd" in out.buffer.getvalue().decode("utf-8")


def test_symbol_prompts_of_an_mqar_run(tmp_path, capsys):
    """An unknown symbol names --prompt; the continuation is space-separated symbols after the prompt."""
    spec = tmp_path / "mq.yaml"
    spec.write_text("name: mq\ntask: {kind: mqar, max_len: 24, n_pairs: 4, n_keys: 8, n_values: 8, n_train: 64, "
                    "n_val: 16, n_test: 16}\nmodel: {d_model: 16, n_heads: 2, n_layers: 1, attention: softmax}\n"
                    "train: {steps: 2, batch_size: 8, eval_every: 2}\n")
    run = tmp_path / "run"
    assert main(["train", str(spec), "--out", str(run), "--no-progress"]) == 0
    refused(capsys, ["generate", run, "--prompt", "k1 zzz"], "--prompt", "'zzz'", keep=(run,))
    assert main(["generate", str(run), "--prompt", "k1 v2 k1", "--max-new-tokens", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("k1 v2 k1 ") and len(out.split()) == 6, out


def test_pick_token_greedy_top_k_and_no_specials():
    logits = np.array([9.0, 8.0, 1.0, 3.0, 2.5])                             # <pad>, <cls> score highest
    assert pick_token(logits) == 3
    rng = np.random.default_rng(0)
    assert {pick_token(logits, temperature=5.0, top_k=1, rng=rng) for _ in range(20)} == {3}
    assert {pick_token(logits, temperature=5.0, top_k=2, rng=rng) for _ in range(200)} == {3, 4}
    seen = []

    def scorer(ids):                                                          # next token = last + 1
        seen.append(ids.tolist())
        out = np.zeros((len(ids), 20))
        out[-1, ids[-1] + 1] = 1.0
        return out

    assert generate(scorer, [5], 4, max_len=3) == [6, 7, 8, 9]
    assert seen[-1] == [CLS_ID, 7, 8]                                         # <cls> + the latest max_len - 1
    with pytest.raises(NasgraphError, match="top_k"):
        generate(scorer, [5], 1, 3, top_k=0)


@pytest.mark.parametrize("options, match", [({"temperature": float("nan")}, "temperature must be a finite"),
                                            ({"temperature": float("inf")}, "temperature must be a finite"),
                                            ({"temperature": 1.0, "seed": -1}, "seed must be >= 0")])
def test_generate_refuses_nan_temperature_and_negative_seed(options, match):
    """`generate --temperature nan` / `--seed -1` used to end in numpy's traceback after the prefill."""
    with pytest.raises(NasgraphError, match=match):
        generate(lambda ids: np.zeros((len(ids), 20)), [5], 2, 3, **options)
