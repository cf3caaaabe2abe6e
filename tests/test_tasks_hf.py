"""Hugging Face datasets as an optional reader of local data: Parquet files and save_to_disk folders
(a DatasetDict's splits used as train/val/test, ClassLabel names as class names). Skipped without
the `hf` extra."""
from __future__ import annotations

import pytest

from nasgraph import tasks
from nasgraph.errors import NasgraphError

datasets = pytest.importorskip("datasets", reason="Hugging Face datasets not installed (pip install 'nasgraph[hf]')")


def table(n: int, offset: int = 0) -> dict:
    return {"review": [f"a review longer than max_len, number {offset + i}" for i in range(n)], "stars": [(offset + i) % 3 for i in range(n)]}


def test_parquet_file_with_named_columns(tmp_path):
    path = tmp_path / "train.parquet"
    datasets.Dataset.from_dict(table(40)).to_parquet(str(path))
    config = tasks.parse_task({"kind": "text", "path": str(path), "max_len": 16, "text_column": "review",
                               "label_column": "stars"})
    data = tasks.load_task(config)
    assert data.class_names == ["0", "1", "2"]
    assert sum(len(s) for s in data.splits.values()) == 40 and set(data.splits) == {"train", "val", "test"}
    assert max(len(ids) for ids in data.splits["train"].ids) == 16           # truncated to max_len


def test_saved_dataset_dict_gives_its_splits_and_class_label_names(tmp_path):
    features = datasets.Features({"review": datasets.Value("string"),
                                  "stars": datasets.ClassLabel(names=["bad", "ok", "good"])})
    splits = {"train": table(30), "validation": table(6, 100), "test": table(9, 200)}
    folder = tmp_path / "saved"
    datasets.DatasetDict({k: datasets.Dataset.from_dict(v, features=features) for k, v in splits.items()}) \
        .save_to_disk(str(folder))
    config = tasks.parse_task({"kind": "text", "path": str(folder), "max_len": 32, "text_column": "review",
                               "label_column": "stars"})
    data = tasks.load_task(config)
    assert sorted(data.class_names) == ["bad", "good", "ok"]
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 30, "val": 6, "test": 9}


def test_a_missing_column_names_the_columns(tmp_path):
    path = tmp_path / "train.parquet"
    datasets.Dataset.from_dict(table(10)).to_parquet(str(path))
    config = tasks.parse_task({"kind": "text", "path": str(path), "max_len": 16})
    with pytest.raises(NasgraphError, match="no column 'text'; columns: review, stars"):
        tasks.load_task(config)
