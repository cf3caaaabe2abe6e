"""ListOps: LRA's generator, TSV format and tokenisation, checked against an independent evaluator."""
import csv
import json
import statistics

import pytest

from nasgraph.errors import ConfigError, NasgraphError
from nasgraph.tasks import CLS_ID, Split, load_task, num_classes, parse_task, vocab_size
from nasgraph.tasks.listops import (VOCAB, generate, lra_string, majority_baseline, read_tsv,
                                    root_operator_baseline, tokenizer, write_tsv)
from nasgraph.tasks.tokenize import Tokenizer

SMALL = dict(min_len=10, max_len=60, max_depth=4, max_args=5)


def evaluate(text: str) -> int:
    """Independent evaluator: a stack machine over LRA's text (parentheses ignored)."""
    ops = {"[MIN": min, "[MAX": max, "[MED": lambda a: int(statistics.median(a)), "[SM": lambda a: sum(a) % 10}
    stack: list = [[]]
    for tok in text.replace("(", " ").replace(")", " ").split():
        if tok in ops:
            stack.append([tok])
        elif tok == "]":
            op, *args = stack.pop()
            stack[-1].append(ops[op](args))
        else:
            stack[-1].append(int(tok))
    (value,) = stack[0]
    return value


def test_generator_is_deterministic_unique_and_bounded():
    a = generate(300, seed=1, **SMALL)
    assert a == generate(300, seed=1, **SMALL)
    assert a != generate(300, seed=2, **SMALL)
    assert len({tuple(t) for t, _ in a}) == 300
    assert all(10 < len(t) < 60 for t, _ in a)
    assert all(0 <= v <= 9 for _, v in a)


def test_labels_match_an_independent_evaluator():
    examples = generate(500, seed=3, **SMALL)
    for tokens, value in examples:
        assert evaluate(lra_string(tokens)) == value
    assert len({v for _, v in examples}) == 10          # every operator/value path is exercised


def test_lra_string_wraps_pairs_like_lra():
    tokens = [VOCAB.index(s) for s in ["[MAX", "2", "[MIN", "3", "1", "]", "]"]]
    assert lra_string(tokens) == "( ( ( [MAX 2 ) ( ( ( [MIN 3 ) 1 ) ] ) ) ] )"
    assert tokenizer(20).encode(lra_string(tokens)) == [CLS_ID] + tokens


def test_tsv_round_trip_in_lra_format(tmp_path):
    examples = generate(50, seed=0, **SMALL)
    path = tmp_path / "basic_train.tsv"
    write_tsv(path, examples)
    raw = path.read_bytes()
    assert raw.startswith(b"Source\tTarget\r\n")
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))[1:]
    assert [int(r[1]) for r in rows] == [v for _, v in examples]
    assert all(r[0].startswith("( ") and r[0].endswith(" )") for r in rows)
    split = read_tsv(path, tokenizer(60))
    assert split.ids == [[CLS_ID] + t for t, _ in examples]
    assert split.labels == [v for _, v in examples]


def test_task_splits_sizes_lengths_and_tokenizer_dict():
    config = parse_task({"kind": "listops", "n_train": 200, "n_val": 20, "n_test": 30, **SMALL})
    data = load_task(config)
    assert [len(data.splits[s]) for s in ("train", "val", "test")] == [200, 20, 30]
    seen = [tuple(ids) for s in data.splits.values() for ids in s.ids]
    assert len(set(seen)) == len(seen)                   # no example in two splits
    assert vocab_size(config) == len(data.vocab) == 17 and num_classes(config) == 10
    tok = Tokenizer.from_dict(json.loads(json.dumps(data.tokenizer)))
    for ids in data.splits["val"].ids:
        assert ids[0] == CLS_ID and len(ids) <= config.max_len
        assert tok.encode(lra_string(ids)) == ids
    assert load_task(config).splits["test"].ids == data.splits["test"].ids


def test_reads_lra_files_truncates_and_carves(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("Source\tTarget\n" + "".join(
        f"( ( ( [MAX {i % 10} ) 9 ) ] )\t9\n( ( ( [MIN {i % 10} ) 3 ) ] )\t{min(i % 10, 3)}\n" for i in range(20)))
    config = parse_task({"kind": "listops", "max_len": 4, "train_path": str(path), "n_val": 5, "n_test": 5})
    data = load_task(config)
    assert [len(data.splits[s]) for s in ("train", "val", "test")] == [30, 5, 5]
    assert all(len(ids) == 4 for ids in data.splits["train"].ids)   # <cls> [MAX d 9, truncated
    assert data.splits["val"].ids == load_task(config).splits["val"].ids


@pytest.mark.parametrize("content, message", [
    ("", "empty file"),
    ("Text\tLabel\n( [MAX 1 2 ] )\t2\n", ":1: expected the header"),
    ("Source\tTarget\n[MAX 1 2 ]\t2\n[MAX 1 2 ]\n", ":3: expected 2 tab-separated fields"),
    ("Source\tTarget\n[MAX 1 2 ]\tx\n", ":2: Target must be a digit"),
    ("Source\tTarget\n[MAX 1 [FOO 2 ]\t2\n", ":2: tokenizer: unknown symbol '[FOO'"),
    ("Source\tTarget\n", "no examples"),
])
def test_bad_tsv_files_name_file_and_line(tmp_path, content, message):
    path = tmp_path / "bad.tsv"
    path.write_text(content)
    with pytest.raises(NasgraphError, match="bad.tsv") as err:
        read_tsv(path, tokenizer(100))
    assert message in str(err.value)


def test_missing_file_is_a_clear_error(tmp_path):
    config = parse_task({"kind": "listops", "train_path": str(tmp_path / "nope.tsv")})
    with pytest.raises(NasgraphError, match="no such file: .*nope.tsv"):
        load_task(config)


def test_baselines():
    ids = [[CLS_ID, VOCAB.index(op)] for op in ["[MIN", "[MAX", "[MED", "[SM", "[MIN"]]
    split = Split(ids, [0, 9, 4, 3, 1])
    assert root_operator_baseline(split) == pytest.approx(3 / 5)
    assert majority_baseline(Split(ids, [3, 3, 4, 1, 3])) == pytest.approx(3 / 5)
    assert majority_baseline(split, reference=Split(ids, [9, 9, 0, 0, 9])) == pytest.approx(1 / 5)


@pytest.mark.parametrize("raw, key, message", [
    ({"kind": "listop"}, "kind", "did you mean 'listops'"),
    ({"kind": "listops", "max_lenght": 10}, "max_lenght", "did you mean 'max_len'"),
    ({"kind": "listops", "vocab_size": 20}, "vocab_size", "disagrees with the task's 17"),
    ({"kind": "listops", "num_classes": 2}, "num_classes", "disagrees with the task's 10"),
    ({"kind": "listops", "max_depth": 2, "min_len": 20, "max_len": 101}, "min_len", "longest possible: 12"),
    ({"kind": "listops", "max_args": 1}, "max_args", "greater than or equal to 2"),
    ({"kind": "listops", "test_path": "x.tsv"}, "train_path", "need train_path"),
])
def test_config_errors_name_the_key(raw, key, message):
    with pytest.raises(ConfigError, match=message) as err:
        parse_task(raw)
    assert err.value.key == key


def test_unknown_kind_lists_valid_kinds():
    from nasgraph.tasks import kinds

    with pytest.raises(ConfigError, match="valid: " + ", ".join(kinds())):
        parse_task({"kind": "imdb"})
    assert {"listops", "text", "tiny", "assoc_recall"} <= set(kinds())
