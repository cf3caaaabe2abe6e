"""What a search found, in one shape for every strategy: the input of the recommendation.

A strategy (supernet or trial-based) returns an Evidence: the architectures it measured, each with
one score per seed on the task's own metric, the pick per seed, and, for supernet strategies, the
final mixing probabilities. `nasgraph.search.recommend` turns it into a pick with its confidence.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

SHARED_WEIGHTS = "shared-weights"   # Measured.detail["source"] of scores read off a supernet's shared weights
Choice = dict[str, list[int]]   # choice-point node -> chosen candidate index per group (layer: 1, head: H)


@dataclass
class Measured:
    """One architecture the search scored."""

    choice: Choice
    labels: dict[str, list[str]]          # the same choice as type names
    scores: list[float]                   # the task metric, one per seed (higher is better)
    cost: float                           # from the search's cost table (cost_kind of the Evidence)
    steps: int                            # training steps behind each score
    kind: str = "candidate"               # "homogeneous" | "mixed" | "pick" | "candidate"
    detail: dict = field(default_factory=dict)  # strategy-specific numbers (KL to teacher, rung, ...)


@dataclass
class Evidence:
    strategy: str
    metric: str                           # e.g. "acc" (classification), "answer_acc", "-bits_per_byte"
    cost_kind: str                        # "flops" or "latency_ms"
    cost_range: tuple[float, float]       # cheapest and costliest architecture of the space
    candidates: dict[str, list[str]]      # choice point -> candidate type names
    seeds: list[int]
    picks: list[Choice]                   # one per seed
    measured: list[Measured]
    wall_seconds: float
    reference_seconds: float | None = None  # one standalone training of the spec, when known
    probabilities: list[dict[str, list[list[float]]]] | None = None  # per seed, supernet strategies
    unit_scores: list[dict] | None = None   # per seed, scoring strategies (DARTFormer)
    notes: list[str] = field(default_factory=list)
    chosen: Choice | None = None          # the strategy's own decision over all seeds (None: vote over picks)
    stages: list[dict] = field(default_factory=list)  # what a strategy measured before `measured`, per seed
    # (teacher_race: one {stage: "race", seed, contenders, races, verdict, ...} per seed and a {stage: "budget"};
    # any stage may carry a warning: {code, message, fix}, and "no_evidence": candidates it could not judge,
    # which caps the confidence at weak)

    def to_json(self) -> dict:
        return asdict(self)
