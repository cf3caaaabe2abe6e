"""The task contract: typed config, token vocabulary, splits of (token ids, label) examples.

Token ids: 0 = <pad>, 1 = <cls> (prepended to every sequence so CLS pooling reads position 0; the
start-of-text token of the per-position tasks). Two outputs: `class` (one label per sequence) and
`token` (one label per position, IGNORE where there is no target; the model ends in an LM head).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from nasgraph.config import StrictConfig

PAD_ID, CLS_ID = 0, 1
SPECIALS = ["<pad>", "<cls>"]
SPLITS = ("train", "val", "test")
IGNORE = -100                                    # a position with no target (same as training.losses)
Output = Literal["class", "token"]


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
    """One split: token id lists (each starting with CLS_ID) and labels.

    A class task has one int label per example; a token task one label list per example, as long as
    its ids (the target of each position, IGNORE where none).
    """

    ids: list[list[int]]
    labels: list[int] | list[list[int]]

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
    output: ClassVar[Output] = "class"             # "token": per-position labels, causal model, LM head
    metric: ClassVar[str] = "acc"                  # the headline key of metrics_from()
    higher_is_better: ClassVar[bool] = True

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

    def metrics_from(self, loss_sum: float, correct: int, n: int, split: Split | None = None) -> dict:
        """Evaluation metrics from summed cross-entropy (nats), correct argmaxes and labelled count.

        `acc` is per labelled example (class tasks) or per labelled position (token tasks). `split`
        is the evaluated split, for metrics that need more than counts (bits per byte of pieces).
        """
        if n == 0:
            raise ValueError("no labelled examples to compute metrics from")
        return {"loss": loss_sum / n, "acc": correct / n, "n": n}

    @property
    def score_name(self) -> str:
        """The headline metric as a higher-is-better score: "acc", "answer_acc", "-bits_per_byte"."""
        return self.metric if self.higher_is_better else f"-{self.metric}"

    def score(self, metrics: dict) -> float:
        """The headline value of metrics_from()'s dict, negated when lower is better (for the search)."""
        return metrics[self.metric] if self.higher_is_better else -metrics[self.metric]

    def better(self, a: float, b: float) -> bool:
        """Whether headline value `a` beats `b`."""
        return a > b if self.higher_is_better else a < b

    @property
    def worst(self) -> float:
        return -math.inf if self.higher_is_better else math.inf
