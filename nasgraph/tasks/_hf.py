"""Hugging Face `datasets` as an optional reader of local data (the `hf` extra): Parquet files and
folders written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk`.

Nothing is downloaded: the offline switches are set before `datasets` is imported, and only local
paths are read (kept in memory, no cache files written next to the data).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from nasgraph.errors import NasgraphError

DICT_MARK = "dataset_dict.json"          # a DatasetDict folder: one sub-folder per split
VAL_SPLITS = ("validation", "val", "valid", "dev")


def datasets_module():
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import datasets
    except ImportError:
        raise NasgraphError("task 'text': formats 'parquet' and 'hf' read through Hugging Face datasets, which is "
                            "not installed: pip install 'nasgraph[hf]'") from None
    datasets.disable_progress_bars()
    return datasets


def is_saved_dataset(path: Path) -> bool:
    """A folder written by save_to_disk (a Dataset or a DatasetDict)."""
    return path.is_dir() and any((path / mark).exists() for mark in (DICT_MARK, "dataset_info.json", "state.json"))


def split_folders(root: Path) -> dict[str, Path | None]:
    """train/val/test folders of a saved DatasetDict (val: validation, val, valid or dev), else root as train."""
    if not (root / DICT_MARK).exists():
        return {"train": root, "val": None, "test": None}
    val = next((root / s for s in VAL_SPLITS if (root / s).is_dir()), None)
    return {"train": root / "train", "val": val, "test": root / "test" if (root / "test").is_dir() else None}


def load_local(path: Path, fmt: str):
    """A datasets.Dataset from a .parquet file or a save_to_disk folder of one split."""
    ds = datasets_module()
    if fmt == "parquet":
        if not path.is_file():
            raise NasgraphError(f"task 'text': no such file: {path}")
        return ds.Dataset.from_parquet(str(path), keep_in_memory=True)
    if not is_saved_dataset(path):
        raise NasgraphError(f"task 'text': {path} is not a folder written by save_to_disk (no dataset_info.json, "
                            f"state.json or {DICT_MARK})")
    data = ds.load_from_disk(str(path), keep_in_memory=True)
    if isinstance(data, ds.DatasetDict):
        raise NasgraphError(f"task 'text': {path} holds the splits {', '.join(data)}; nasgraph reads train, "
                            f"validation and test from it: name them so, or point path at one split's folder")
    return data


def read_dataset(path: Path, fmt: str, text_col: str, label_col: str) -> Iterator[tuple[str, str]]:
    """(text, label) per row; a ClassLabel column gives its class names, errors name the file and row."""
    from nasgraph.tasks.text import _fields

    data = load_local(path, fmt)
    missing = [c for c in (text_col, label_col) if c not in data.column_names]
    if missing:
        raise NasgraphError(f"task 'text': {path}: no column '{missing[0]}'; columns: {', '.join(data.column_names)}")
    names = getattr(data.features[label_col], "names", None)   # ClassLabel: ints -> names
    for row_no, row in enumerate(data.select_columns([text_col, label_col]), 1):
        label = row[label_col]
        if names is not None and isinstance(label, int) and 0 <= label < len(names):
            label = names[label]
        yield _fields({text_col: row[text_col], label_col: label}, path, row_no, text_col, label_col)
