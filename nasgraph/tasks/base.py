"""The task contract: typed config, token vocabulary, splits of (token ids, label) examples.

Token ids: 0 = <pad>, 1 = <cls> (prepended to every sequence so CLS pooling reads position 0).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import ClassVar

from nasgraph.config import StrictConfig

PAD_ID, CLS_ID = 0, 1
SPECIALS = ["<pad>", "<cls>"]
SPLITS = ("train", "val", "test")


# Generated splits are built in Python at ~10k examples/s (tiny, measured): 2M take minutes, 1e9 a day.
MAX_EXAMPLES = 2_000_000


class TaskConfig(StrictConfig):
    """Fields every task has; each kind subclasses this with its own options."""

    kind: str
    vocab_size: int | None = None   # None: taken from the task's vocabulary
    num_classes: int | None = None  # None: taken from the task's labels
    max_len: int                    # longest token sequence fed to the model (including <cls>)
    seed: int = 0


@dataclass
class Split:
    """One split: token id lists (each starting with CLS_ID) and integer labels."""

    ids: list[list[int]]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: list[int]) -> "Split":
        return Split([self.ids[i] for i in indices], [self.labels[i] for i in indices])


def carve(split: Split, n: int, seed: int) -> tuple[Split, Split]:
    """Deterministically move n random examples out of `split`: returns (rest, carved)."""
    order = list(range(len(split)))
    random.Random(seed).shuffle(order)
    return split.subset(sorted(order[n:])), split.subset(sorted(order[:n]))


@dataclass
class TaskData:
    """What a task hands the model and the trainer."""

    splits: dict[str, Split]                 # "train", "val", "test"
    vocab: list[str]                         # token strings; index = id
    class_names: list[str]
    tokenizer: dict = field(default_factory=dict)  # JSON-able, for nasgraph.tasks.tokenize.Tokenizer


class Task:
    """A registered task kind: `load()` builds (or reads) its data, deterministically from the seed.

    `__init__` must stay cheap (no data): the compiler builds tasks just to ask vocab_size() and
    num_classes(). Cross-field checks go in `check()` and raise ConfigError.
    """

    kind: ClassVar[str] = ""
    Config: ClassVar[type[TaskConfig]] = TaskConfig

    def __init__(self, config: TaskConfig):
        self.config = config
        self.check()

    def check(self) -> None:
        """Validate option combinations a single field cannot; raise ConfigError naming the key."""

    def load(self) -> TaskData:
        raise NotImplementedError

    def vocab_size(self) -> int:
        raise NotImplementedError

    def num_classes(self) -> int:
        raise NotImplementedError
