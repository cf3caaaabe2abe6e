"""Per-position tasks: `lm` (causal LM on local text) and `mqar`; their metrics, graphs and batches."""
import json
import math

import pytest
import torch

from nasgraph import attention
from nasgraph.errors import NasgraphError, SpecError
from nasgraph.graph import compile_spec
from nasgraph.model import GraphModule
from nasgraph.spec import load_spec
from nasgraph.tasks import CLS_ID, get, load_task, parse_task
from nasgraph.tasks.base import IGNORE, Split
from nasgraph.tasks.batching import collate
from nasgraph.tasks.tokenize import Tokenizer
from nasgraph.training.losses import loss_and_correct

TEXT = "".join(f"line {i}: the quick brown fox jumps over the lazy dog.\n" for i in range(200))


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT)
    return path


def stream_of(split: Split) -> list[int]:
    return [y for row in split.labels for y in row]


def test_lm_cuts_90_5_5_and_predicts_every_byte_once(text_file):
    config = parse_task({"kind": "lm", "path": str(text_file), "max_len": 32})
    data = load_task(config)
    data_bytes = TEXT.encode()
    n_val = n_test = round(0.05 * len(data_bytes))
    cuts = {"train": data_bytes[:len(data_bytes) - n_val - n_test],
            "val": data_bytes[len(data_bytes) - n_val - n_test:len(data_bytes) - n_test],
            "test": data_bytes[len(data_bytes) - n_test:]}
    for name, split in data.splits.items():
        assert bytes(y - 2 for y in stream_of(split)) == cuts[name]          # contiguous, each byte once
        for ids, labels in zip(split.ids, split.labels):
            assert ids[0] == CLS_ID and len(ids) == len(labels) <= 32
            assert ids[1:] == labels[:-1]                                     # labels = inputs shifted
    assert all(len(ids) == 32 for ids in data.splits["train"].ids[:-1])
    assert data.vocab[:2] == ["<pad>", "<cls>"] and len(data.vocab) == get("lm")(config).num_classes() == 258


def test_lm_separate_files_and_pieces(tmp_path, text_file):
    (tmp_path / "val.txt").write_text("the quick fox")
    (tmp_path / "vocab.txt").write_text("the\n quick\nfox\n")
    config = parse_task({"kind": "lm", "path": "text.txt", "val_path": "val.txt", "vocab_path": "vocab.txt",
                         "max_len": 16}, base_dir=tmp_path)
    data = load_task(config)
    tok = Tokenizer.from_dict(json.loads(json.dumps(data.tokenizer)))
    assert len(data.vocab) == 258 + 3 and data.vocab[-3:] == ["the", " quick", "fox"]
    assert stream_of(data.splits["val"]) == [258, 259, 32 + 2, 260]          # "the", " quick", " ", "fox"
    assert tok.decode([CLS_ID] + stream_of(data.splits["test"])) == TEXT[-round(0.05 * len(TEXT)):]
    assert tok.ids("the fox!") == [258, 32 + 2, 260, ord("!") + 2]


def test_lm_bits_per_byte_counts_bytes_not_pieces(tmp_path, text_file):
    (tmp_path / "vocab.json").write_text(json.dumps(["the", "fox"]))
    pieces = get("lm")(parse_task({"kind": "lm", "path": str(text_file), "vocab_path": str(tmp_path / "vocab.json")}))
    split = Split([[CLS_ID, 258]], [[258, 259, 40]])                          # 3 + 3 + 1 bytes in 3 tokens
    m = pieces.metrics_from(3 * math.log(2), 1, 3, split)
    assert m["bits_per_byte"] == pytest.approx(3 / 7) and m["perplexity"] == pytest.approx(2.0)
    plain = get("lm")(parse_task({"kind": "lm", "path": str(text_file)}))
    assert plain.metrics_from(6 * math.log(2), 2, 3)["bits_per_byte"] == pytest.approx(2.0)
    assert not plain.higher_is_better and plain.metric == "bits_per_byte" and plain.better(1.0, 2.0)


@pytest.mark.parametrize("raw, match", [
    ({"path": "missing.txt"}, "no such text file"),
    ({"path": "tiny.txt"}, "too few to cut"),
    ({"path": "tiny.txt", "vocab_path": "bad_vocab.txt"}, "single byte"),
])
def test_lm_input_errors(tmp_path, raw, match):
    (tmp_path / "tiny.txt").write_text("ab")
    (tmp_path / "bad_vocab.txt").write_text("ok\nx\n")
    with pytest.raises(NasgraphError, match=match):
        load_task(parse_task({"kind": "lm", **raw}, base_dir=tmp_path))


def test_mqar_labels_the_answers_only():
    config = parse_task({"kind": "mqar", "max_len": 40, "n_pairs": 5, "n_keys": 10, "n_values": 7,
                         "n_train": 50, "n_val": 5, "n_test": 5})
    data = load_task(config)
    vocab = data.vocab
    for ids, labels in zip(data.splits["train"].ids, data.splits["train"].labels):
        assert len(ids) == len(labels) == 40 and ids[0] == CLS_ID
        pairs = {vocab[ids[i]]: vocab[ids[i + 1]] for i in range(1, 11, 2)}
        assert len(pairs) == 5 and all(k[0] == "k" and v[0] == "v" for k, v in pairs.items())
        answered = [(vocab[ids[p]], vocab[y]) for p, y in enumerate(labels) if y != IGNORE]
        assert len(answered) == 5
        assert all(pairs[k] == v for k, v in answered) and len({k for k, _ in answered}) == 5
        assert all(labels[p] == IGNORE for p in range(11))                    # no loss on the pairs
    assert get("mqar").metric == "answer_acc"


def answer_gaps(config: dict) -> list[int]:
    """Distance of every answer from the end of the pairs, over the train split."""
    data = load_task(parse_task({"kind": "mqar", "n_val": 5, "n_test": 5, **config}))
    start = 1 + 2 * config["n_pairs"]
    gaps = []
    for ids, labels in zip(data.splits["train"].ids, data.splits["train"].labels):
        answered = [p for p, y in enumerate(labels) if y != IGNORE]
        assert len(answered) == config["n_pairs"] and all(p >= start for p in answered)
        assert {ids[p] for p in answered} == set(ids[1:start:2])      # every key asked once
        gaps += [p - start for p in answered]
    return gaps


def test_mqar_power_law_queries_sit_near_the_pairs_uniform_ones_spread():
    base = {"max_len": 200, "n_pairs": 4, "n_keys": 8, "n_values": 8, "n_train": 300}
    uniform, power = answer_gaps(base), answer_gaps({**base, "query_gaps": "power_law"})
    assert sorted(uniform)[len(uniform) // 2] > 60          # median of a uniform gap over 0 .. 190: ~95
    assert sorted(power)[len(power) // 2] < 30              # Zoology's power law: most gaps are short
    assert max(power) > 60                                  # ... but the whole region stays reachable
    flatter = answer_gaps({**base, "query_gaps": "power_law", "power_a": 0.5})
    assert sum(flatter) / len(flatter) > sum(power) / len(power)   # power_a 1 would be uniform


@pytest.mark.parametrize("raw, key", [
    ({"n_pairs": 9, "n_keys": 8}, "n_pairs"),
    ({"query_gaps": "geometric"}, "query_gaps"),
    ({"n_pairs": 4, "n_queries": 5}, "n_queries"),
    ({"n_pairs": 8, "max_len": 20}, "max_len"),
])
def test_mqar_config_errors(raw, key):
    from nasgraph.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        parse_task({"kind": "mqar", **raw})
    assert err.value.key == key


def test_per_position_labels_pad_with_ignore_and_score_labelled_positions_only():
    tokens, labels = collate([[1, 5, 6], [1, 7]], [[5, 6, 9], [7, 8]])
    assert tokens.tolist() == [[1, 5, 6], [1, 7, 0]] and labels.tolist() == [[5, 6, 9], [7, 8, IGNORE]]
    logits = torch.full((2, 3, 10), -5.0)
    logits[0, 0, 5] = logits[0, 1, 0] = logits[1, 0, 7] = logits[1, 1, 8] = logits[0, 2, 9] = 5.0
    logits[1, 2, 3] = 50.0                                                    # the padded position: ignored
    loss, correct, n = loss_and_correct(logits, labels)
    assert (correct, n) == (4, 5) and loss < 20


LM_SPEC = """
name: lm
task: {kind: lm, path: text.txt, max_len: 24}
model: {d_model: 16, n_heads: 2, n_layers: 2, attention: %s}
train: {steps: 4, batch_size: 8, eval_every: 2, checkpoint_every: 2}
"""


def test_standard_encoder_of_an_lm_task_is_causal_and_ends_in_an_lm_head(write_spec, text_file):
    g = compile_spec(load_spec(write_spec(LM_SPEC % "[softmax, linear]")))
    ops = [d["op"] for _, d in g.nodes(data=True)]
    assert "pool" not in ops and g.nodes[g.graph["output"]]["op"] == "lm_head"
    assert g.nodes[g.graph["output"]]["shape"] == ("B", "T", 258)
    assert all(d["params"]["causal"] for _, d in g.nodes(data=True) if d["op"] == "attention")


@pytest.mark.parametrize("model, match", [
    ("{d_model: 16, n_heads: 2, n_layers: 1, attention: {candidates: [softmax], causal: false}}", "must be causal"),
    ("{d_model: 16, n_heads: 2, n_layers: 1, attention: linformer}", "no causal form"),
    ("{d_model: 16, n_heads: 2, graph: [{embedding: {}}, {pool: mean}, {head: {}}]}", "per-position"),
    ("{d_model: 16, n_heads: 2, nodes: {e: {op: embedding}, a: {op: attention, inputs: [e], candidates: [softmax],"
     " causal: false}, h: {op: lm_head, inputs: [a]}}}", "must be causal"),
])
def test_lm_model_errors_are_located(write_spec, text_file, model, match):
    with pytest.raises(SpecError, match=match) as err:
        compile_spec(load_spec(write_spec(f"name: x\ntask: {{kind: lm, path: text.txt, max_len: 24}}\nmodel: {model}\n")))
    assert err.value.line is not None


def test_tied_lm_head_shares_the_embedding(write_spec, text_file):
    spec = write_spec("""
    name: tied
    task: {kind: lm, path: text.txt, max_len: 24}
    model:
      d_model: 16
      n_heads: 2
      graph:
        - embedding: {}
        - residual: [{norm: {}}, {attention: softmax}]
        - norm: {}
        - lm_head: {tie: true}
    """)
    model = GraphModule(compile_spec(load_spec(spec)))
    assert model.nodes["lm_head0"].proj.weight is model.nodes["embedding0"].token.weight
    again = GraphModule(compile_spec(load_spec(spec)))
    again.load_state_dict(model.state_dict())
    assert again.nodes["lm_head0"].proj.weight is again.nodes["embedding0"].token.weight
    assert torch.equal(again.nodes["lm_head0"].proj.weight, model.nodes["embedding0"].token.weight)


CAUSAL = [n for n in attention.names() if attention.get(n).caps.causal]


@pytest.mark.parametrize("kind", CAUSAL)
def test_changing_a_token_never_changes_earlier_logits(write_spec, kind):
    spec = write_spec(f"""
    name: causal
    task: {{kind: mqar, max_len: 40, n_pairs: 4, n_keys: 8, n_values: 8, n_train: 2, n_val: 1, n_test: 1}}
    model: {{d_model: 16, n_heads: 2, n_layers: 2, attention: {kind}}}
    """)
    torch.manual_seed(0)
    model = GraphModule(compile_spec(load_spec(spec))).eval()
    x = torch.randint(2, 19, (2, 40))                                         # (B, T)
    with torch.no_grad():
        base = model(x)                                                       # (B, T, V)
        for t in (0, 7, 19, 38):
            y = x.clone()
            y[:, t + 1] = (y[:, t + 1] - 1) % 17 + 2                          # another real token
            out = model(y)
            assert torch.allclose(out[:, :t + 1], base[:, :t + 1], atol=1e-5), f"{kind} leaks from {t + 1}"
            assert not torch.allclose(out[:, t + 1], base[:, t + 1], atol=1e-5)


def test_train_eval_export_generate_end_to_end(tmp_path, text_file, write_spec, capsys):
    """A tiny causal LM: train, eval (bits per byte), export with per-position parity, then the same
    greedy continuation from the run folder and the .onnx; predict points to generate."""
    from nasgraph.cli import main

    spec = write_spec(LM_SPEC % "{candidates: [softmax], causal: true}")
    run, onnx_path = tmp_path / "run", tmp_path / "lm.onnx"
    assert main(["train", str(spec), "--out", str(run), "--no-progress"]) == 0
    result = json.loads((run / "result.json").read_text())
    assert result["metric"] == {"name": "bits_per_byte", "higher_is_better": False}
    assert result["test"]["bits_per_byte"] == pytest.approx(result["test"]["loss"] / math.log(2))
    assert "bits_per_byte" in result["best_val"]
    assert main(["eval", str(run), "--split", "val"]) == 0
    assert "bits_per_byte" in capsys.readouterr().out
    assert main(["export", str(run), "-o", str(onnx_path)]) == 0
    out = capsys.readouterr().out
    assert "parity ok" in out and "decode parity ok" in out
    assert (tmp_path / "lm.prefill.onnx").is_file() and (tmp_path / "lm.step.onnx").is_file()
    args = ["--prompt", "the quick", "--max-new-tokens", "30", "--json"]      # past max_len 24
    assert main(["generate", str(run), *args]) == 0
    eager = json.loads(capsys.readouterr().out)
    for exported_form in ([str(onnx_path)], [str(tmp_path / "lm.step.onnx")], [str(onnx_path), "--full-forward"]):
        assert main(["generate", *exported_form, *args]) == 0                # prefill/step graphs, or full passes
        assert json.loads(capsys.readouterr().out) == eager, exported_form
    assert len(eager["ids"]) == 30 and all(i >= 2 for i in eager["ids"])
    sampled = [main(["generate", str(run), *args, "--temperature", "1.5", "--top-k", "5", "--seed", "3"])
               for _ in range(2)]
    first, second = capsys.readouterr().out.splitlines()
    assert sampled == [0, 0] and first == second
    assert main(["predict", str(onnx_path), "some text"]) == 2
    assert "nasgraph generate" in capsys.readouterr().err


def test_missing_vocabulary_file_is_located_at_vocab_path(write_spec, text_file):
    """It named the file but no spec line or key."""
    with pytest.raises(SpecError, match="no such vocabulary file") as err:
        compile_spec(load_spec(write_spec("name: x\ntask: {kind: lm, path: text.txt, max_len: 24, vocab_path: v.json}\n"
                                          "model: {d_model: 16, n_heads: 2, n_layers: 1, attention: softmax}\n")))
    assert err.value.path == "task.vocab_path" and err.value.line == 2, str(err.value)


@pytest.mark.parametrize("task, key", [("path: nope.txt", "task.path"), ("path: text.txt, val_path: nope.txt",
                                                                          "task.val_path"),
                                       ("path: .", "task.path"), ("path: text.txt, max_bytes: 5", "task.path")])
def test_missing_or_short_text_is_located_at_its_task_key(write_spec, text_file, tmp_path, capsys, task, key):
    """A missing lm text named the file but no spec line or key (`train`, `search`, `eval`, `demo` read it)."""
    from cli_checks import refused

    spec = write_spec(f"name: x\ntask: {{kind: lm, {task}, max_len: 24}}\n"
                      "model: {d_model: 16, n_heads: 2, n_layers: 1, attention: softmax}\n")
    line = refused(capsys, ["train", spec, "--out", tmp_path / "run", "--no-progress"], f"{spec}:2:", key)
    assert "task 'lm'" in line
