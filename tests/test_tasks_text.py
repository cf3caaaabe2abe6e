"""Byte-level text classification from local files: aclImdb folders, CSV, TSV, JSONL."""
import json

import pytest

from nasgraph.errors import ConfigError, NasgraphError
from nasgraph.tasks import CLS_ID, load_task, num_classes, parse_task, vocab_size
from nasgraph.tasks.tokenize import Tokenizer


def make_aclimdb(root, n=6):
    for split in ("train", "test"):
        for label in ("pos", "neg"):
            (root / split / label).mkdir(parents=True)
            for i in range(n):
                (root / split / label / f"{i}_7.txt").write_text(f"{label} review {i} caf\u00e9 <br />", "utf-8")
    (root / "train" / "unsup").mkdir()
    (root / "train" / "unsup" / "0_0.txt").write_text("unlabelled")
    return root


def test_aclimdb_layout(tmp_path):
    root = make_aclimdb(tmp_path / "aclImdb")
    config = parse_task({"kind": "text", "path": str(root), "max_len": 12, "val_fraction": 0.25})
    data = load_task(config)
    assert data.class_names == ["neg", "pos"] and num_classes(config) == 2
    assert [len(data.splits[s]) for s in ("train", "val", "test")] == [9, 3, 12]   # unsup skipped
    assert vocab_size(config) == len(data.vocab) == 258
    ids = data.splits["test"].ids[0]                        # sorted: neg/0_7.txt first
    assert ids == [CLS_ID] + [b + 2 for b in b"neg review 0"[:11]]
    assert data.splits["test"].labels[0] == 0
    tok = Tokenizer.from_dict(json.loads(json.dumps(data.tokenizer)))
    assert tok.encode("neg review 0 café") == ids
    assert load_task(config).splits["val"].ids == data.splits["val"].ids


def test_bytes_are_utf8_and_truncated():
    tok = Tokenizer("bytes", 5)
    assert tok.encode("é!") == [CLS_ID, 0xC3 + 2, 0xA9 + 2, ord("!") + 2]
    assert tok.encode("abcdefgh") == [CLS_ID] + [b + 2 for b in b"abcd"]
    assert tok.decode(tok.encode("ab")) == "ab"


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl"])
def test_table_formats_columns_and_label_order(tmp_path, fmt):
    rows = [(f"text number {i}, \"quoted\"", str([2, 10, 1][i % 3])) for i in range(30)]
    path = tmp_path / f"data.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps({"review": t, "stars": int(y)}) + "\n" for t, y in rows))
    else:
        import csv
        with open(path, "w", newline="") as f:
            w = csv.writer(f, delimiter="," if fmt == "csv" else "\t")
            w.writerow(["id", "review", "stars"])
            w.writerows([i, t, y] for i, (t, y) in enumerate(rows))
    config = parse_task({"kind": "text", "path": str(path), "text_column": "review", "label_column": "stars",
                         "max_len": 64})
    data = load_task(config)
    assert data.class_names == ["1", "2", "10"]               # numeric labels sort numerically
    assert sum(len(s) for s in data.splits.values()) == 30 and len(data.splits["test"]) == 3
    by_text = {Tokenizer.from_dict(data.tokenizer).decode(ids): y
               for s in data.splits.values() for ids, y in zip(s.ids, s.labels)}
    assert by_text == {t: data.class_names.index(y) for t, y in rows}


def test_given_class_names_and_test_file(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\na,pos\nb,neg\nc,pos\nd,neg\ne,pos\n")
    (tmp_path / "test.csv").write_text("text,label\nz,neg\n")
    config = parse_task({"kind": "text", "path": "train.csv", "test_path": "test.csv", "max_len": 8,
                         "class_names": ["pos", "neg"], "num_classes": 2}, base_dir=tmp_path)
    data = load_task(config)
    assert data.class_names == ["pos", "neg"] and data.splits["test"].labels == [1]
    assert len(data.splits["train"]) + len(data.splits["val"]) == 5


@pytest.mark.parametrize("name, content, message", [
    ("a.csv", "", "a.csv: empty file"),
    ("a.csv", "body,label\nx,1\n", "a.csv:1: no column 'text' in the header; columns: body, label"),
    ("a.csv", "text,label\nx,1\ny\n", "a.csv:3: expected 2 fields"),
    ("a.csv", "text,label\nx,1\ny,\n", "a.csv:3: empty label"),
    ("a.tsv", "text\tlabel\nx\t1\ty\n", "a.tsv:2: expected 2 fields"),
    ("a.jsonl", '{"text": "x", "label": 1}\n{"text": "y", \n', "a.jsonl:2: invalid JSON"),
    ("a.jsonl", '{"text": "x", "label": 1}\n{"label": 0}\n', "a.jsonl:2: missing 'text'"),
    ("a.jsonl", '["x", 1]\n', "a.jsonl:1: expected an object"),
    ("a.csv", "text,label\n", "a.csv has no examples"),
])
def test_malformed_files_name_file_and_line(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(NasgraphError) as err:
        load_task(parse_task({"kind": "text", "path": str(tmp_path / name)}))
    assert message in str(err.value)


def test_label_outside_given_classes(tmp_path):
    (tmp_path / "a.csv").write_text("text,label\nx,pos\ny,meh\n")
    config = parse_task({"kind": "text", "path": str(tmp_path / "a.csv"), "class_names": ["neg", "pos"]})
    with pytest.raises(NasgraphError, match="label 'meh' is not a class; classes: neg, pos"):
        load_task(config)


def test_missing_paths_and_bad_options(tmp_path):
    with pytest.raises(NasgraphError, match="no such file: .*nope.csv"):
        load_task(parse_task({"kind": "text", "path": str(tmp_path / "nope.csv")}))
    (tmp_path / "empty").mkdir()
    with pytest.raises(NasgraphError, match="no such folder: .*empty.train"):
        load_task(parse_task({"kind": "text", "path": str(tmp_path / "empty")}))
    with pytest.raises(ConfigError, match="cannot tell the format of .*data.txt"):
        parse_task({"kind": "text", "path": str(tmp_path / "data.txt")})
    with pytest.raises(ConfigError, match="'format'.*'csv'"):
        parse_task({"kind": "text", "path": "x.csv", "format": "xml"})
    (tmp_path / "a.csv").write_text("text,label\nx,a\ny,b\nz,c\n")
    with pytest.raises(ConfigError, match="num_classes 2 disagrees with the 3 classes"):
        load_task(parse_task({"kind": "text", "path": str(tmp_path / "a.csv"), "num_classes": 2}))
