"""The spec language as typed models. Loading with source locations lives in loader.py.

Top level: name, task, model, search, train, export, bench. `model` is either the standard encoder
(n_layers or an explicit `layers` list) or an op graph: `graph` (compact sequential form with
`repeat` and `residual`) or `nodes` (explicit named nodes with `op` and `inputs`).
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import ConfigDict, Field, field_validator, model_validator

from nasgraph.config import StrictConfig, parse_config
from nasgraph.errors import ConfigError

Candidate = Union[str, dict[str, dict[str, Any]]]  # "softmax" or {local: {window: 32}}
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]    # what every RNG we seed (numpy too) accepts
Size = Annotated[int, Field(gt=0)]
DEVICE_CHOICES = "auto, cpu, cuda, cuda:N (N = a GPU index)"


def check_device(text: str) -> str:
    """`text` when it names a device nasgraph runs on (train.device, --device); ValueError listing the valid ones."""
    m = re.fullmatch(r"(auto|cpu|cuda)(:\d+)?", str(text).strip())
    if m is None or (m.group(2) and m.group(1) != "cuda"):
        raise ValueError(f"unknown device '{text}'; valid: {DEVICE_CHOICES}")
    return str(text).strip()


class AttentionSpec(StrictConfig):
    """A choice point (several candidates), a fixed attention (one), or a per-head assignment (heads)."""

    candidates: list[Candidate] | None = None
    granularity: Literal["layer", "head"] = "layer"
    heads: list[Candidate] | None = None  # derived per-head model: one candidate per head
    causal: bool = False

    @model_validator(mode="after")
    def _one_form(self):
        if (self.candidates is None) == (self.heads is None):
            raise ValueError("give exactly one of 'candidates' (a choice) or 'heads' (one type per head)")
        if self.candidates is not None and not self.candidates:
            raise ValueError("'candidates' is empty: list at least one attention type")
        return self


class IntChoice(StrictConfig):
    """An elastic dimension: the search (strategy evolution) picks one of `choices` (mixFormer)."""

    choices: list[Annotated[int, Field(gt=0)]] = Field(min_length=1)

    @field_validator("choices")
    @classmethod
    def _distinct(cls, v):
        if len(set(v)) != len(v):
            raise ValueError(f"choices {v} repeat a value: list each once")
        return v


class MultChoice(IntChoice):
    """Elastic FFN width: each layer picks one multiplier of d_model."""

    choices: list[Annotated[float, Field(gt=0)]] = Field(min_length=1)


def _elastic(cls: type[IntChoice], v: Any) -> Any:
    """A mapping is an elastic dimension: checked as one, so the error names its own key."""
    if not isinstance(v, dict):
        return v
    try:
        return parse_config(cls, v, "elastic dimension {choices: [...]}")
    except ConfigError as err:
        raise ValueError(str(err)) from None


class FFNSpec(StrictConfig):
    mult: Annotated[float, Field(gt=0)] | MultChoice = 4.0  # hidden = mult * d_model unless `hidden` is given; {choices: [...]}: elastic
    hidden: int | None = Field(None, gt=0)
    activation: Literal["gelu", "relu", "swiglu"] = "gelu"

    @field_validator("mult", mode="before")
    @classmethod
    def _choices(cls, v):
        return _elastic(MultChoice, v)


class NormSpec(StrictConfig):
    type: Literal["layer", "rms"] = "layer"
    placement: Literal["pre", "post"] = "pre"


def _attention_shorthand(v):
    """`attention: softmax`, `attention: [softmax, linear]`, `attention: {local: {window: 32}}`."""
    if isinstance(v, list) or (isinstance(v, (str, dict)) and not _is_attention_mapping(v)):
        return {"candidates": v if isinstance(v, list) else [v]}
    return v


class LayerSpec(StrictConfig):
    """One encoder layer of the explicit `layers` list; unset fields take the model's defaults."""

    attention: AttentionSpec | None = None
    ffn: FFNSpec | None = None

    @field_validator("attention", mode="before")
    @classmethod
    def _shorthand(cls, v):
        return _attention_shorthand(v)


class ModelSpec(StrictConfig):
    d_model: Annotated[int, Field(gt=0)] | IntChoice          # {choices: [...]}: an elastic dimension
    n_heads: Annotated[int, Field(gt=0)] | IntChoice
    n_layers: Annotated[int, Field(gt=0)] | IntChoice | None = None
    layers: list[LayerSpec] | None = Field(None, min_length=1)
    attention: AttentionSpec | None = None
    ffn: FFNSpec = FFNSpec()
    norm: NormSpec = NormSpec()
    position: Literal["learned", "sinusoidal", "none"] = "learned"
    pooling: Literal["cls", "mean"] = "cls"
    dropout: float = Field(0.0, ge=0, lt=1)
    graph: list[dict[str, Any]] | None = Field(None, min_length=1)   # compact sequential form
    nodes: dict[str, dict[str, Any]] | None = Field(None, min_length=1)  # explicit form

    @field_validator("attention", mode="before")
    @classmethod
    def _shorthand(cls, v):
        return _attention_shorthand(v)

    @field_validator("d_model", "n_heads", "n_layers", mode="before")
    @classmethod
    def _choices(cls, v):
        return _elastic(IntChoice, v)

    @model_validator(mode="after")
    def _consistent(self):
        forms = [f for f in ("graph", "nodes") if getattr(self, f) is not None]
        if len(forms) > 1:
            raise ValueError("give either 'graph' (sequential form) or 'nodes' (explicit form), not both")
        if not forms:
            if self.n_layers is None and self.layers is None:
                raise ValueError("missing 'n_layers' (or an explicit 'layers' list, 'graph' or 'nodes')")
            if isinstance(self.n_layers, IntChoice) and self.layers is not None:
                raise ValueError("n_layers with choices takes its layers from the model-wide keys: drop 'layers'")
            if self.n_layers is not None and self.layers is not None and self.n_layers != len(self.layers):
                raise ValueError(f"n_layers is {self.n_layers} but 'layers' lists {len(self.layers)}")
            if self.attention is None and (self.layers is None or any(l.attention is None for l in self.layers)):
                raise ValueError("missing 'attention' (model-wide, or in every entry of 'layers')")
        return self


def _is_attention_mapping(v) -> bool:
    return isinstance(v, dict) and bool({"candidates", "heads", "granularity", "causal"} & set(v))


class FlopsObjective(StrictConfig):
    weight: float = Field(0.1, ge=0)
    shape: Literal["add", "mul"] = "add"   # add: CE + w * cost/ref; mul: CE * (cost/target)^w (log form)
    target: float | None = Field(None, gt=0, le=1)  # fraction of the largest architecture's cost (0..1] or None


DEFAULT_DECODE_CONTEXT = 4096


class LatencyObjective(FlopsObjective):
    mode: Literal["forward", "decode"] = "forward"  # forward: one pass over the sequence; decode: one token
    context: int | None = Field(None, gt=0)         # decode: tokens already in the context (default 4096)
    backend: Literal["onnxruntime", "torch-eager"] = "onnxruntime"  # decode: the engine whose step is timed

    @model_validator(mode="after")
    def _context_for_decode(self):
        if self.context is not None and self.mode != "decode":
            raise ValueError("'context' applies to mode: decode (the per-token cost after that many tokens)")
        if self.backend != "onnxruntime" and self.mode != "decode":
            raise ValueError(f"backend '{self.backend}' applies to mode: decode (a forward pass is timed in "
                             f"onnxruntime)")
        return self

    @property
    def decode_context(self) -> int:
        return self.context or DEFAULT_DECODE_CONTEXT


class ObjectiveSpec(StrictConfig):
    flops: FlopsObjective | None = None
    latency: LatencyObjective | None = None  # measured latency table (deploy side): a forward pass, or decode


DEFAULT_STRATEGY = "teacher_race"   # best by measurement: benchmarks/search_fidelity_results.md, README


class SearchSpec(StrictConfig):
    """Keys every strategy shares; the strategy's own options sit beside them (flat form) and are
    validated by that strategy's typed Config (nasgraph.search.strategies), which lists them."""

    model_config = ConfigDict(extra="allow", frozen=True)

    strategy: str = DEFAULT_STRATEGY              # a registered strategy (nasgraph.search.strategies)
    steps: int | None = Field(None, gt=0)         # the search's budget unit; default: train.steps
    seeds: list[Seed] = Field([0], min_length=1)
    arch_fraction: float = Field(0.2, gt=0, lt=1)  # share of train held out to score architectures on
    score_batches: int | None = Field(40, gt=0)   # batches of that slice per score (None: all)
    objective: ObjectiveSpec = ObjectiveSpec()
    backend: str = "in-process"                   # where independent trials run (nasgraph.backends): in-process, ray
    workers: int | None = Field(None, gt=0)       # ray: trials at once (a local Ray's CPUs; default: usable cores)
    address: str | None = None                    # ray: a running cluster ("auto", "host:port") instead of a local Ray
    gpus_per_trial: float | None = Field(None, gt=0)  # ray: GPUs each trial holds (0.25: four share one); trials on cuda

    @property
    def options(self) -> dict[str, Any]:
        """The strategy's own options as written (validated by the strategy's Config)."""
        return dict(self.model_extra or {})


class TrainSpec(StrictConfig):
    steps: int = Field(1000, gt=0)
    batch_size: int = Field(32, gt=0)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_steps: int = Field(0, ge=0)
    grad_clip: float | None = Field(1.0, gt=0)
    eval_every: int = Field(200, gt=0)
    eval_batches: int | None = Field(None, gt=0)
    checkpoint_every: int = Field(200, gt=0)
    seed: Seed = 0
    threads: int | None = Field(None, gt=0)   # capped at the usable cores (with a note)
    log_to: list[Literal["tensorboard", "mlflow"]] = []  # metrics also to these (extras), besides the run files
    device: str = "auto"      # auto | cpu | cuda | cuda:N (`--device` overrides; a resumed run may change it)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # bf16/fp16: autocast; fp16 with a grad scaler (CUDA)

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        return check_device(v)


class ExportSpec(StrictConfig):
    opset: int = Field(18, ge=18)
    atol: float = Field(1e-4, gt=0)


class BenchSpec(StrictConfig):
    batch_sizes: list[Size] = Field([1], min_length=1)
    seq_lens: list[Size] = Field([128, 512], min_length=1)
    repeats: int = Field(30, gt=0)
    warmup: int = Field(5, ge=0)
    threads: int | None = Field(None, gt=0)


class Spec(StrictConfig):
    name: str
    plugins: list[str] = []  # modules (or .py files) imported before validation: user attention/tasks/strategies
    task: dict[str, Any]   # validated by the task kind's own config (nasgraph.tasks.parse_task)
    model: ModelSpec
    search: SearchSpec = SearchSpec()
    train: TrainSpec = TrainSpec()
    export: ExportSpec = ExportSpec()
    bench: BenchSpec = BenchSpec()
