"""Hostile spec generator shared by tests/test_spec_fuzz.py and benchmarks/fuzz_specs.py.

A case is (file bytes, --set overrides). Data mutations act at one key path of an example spec
(delete, rename, type swap, wrong enum, huge/zero/negative/NaN values, empty or nested lists); text
mutations act on the YAML itself (control characters, BOM, NUL and invalid UTF-8 bytes, lone
surrogates, deep nesting, alias bombs, merge keys, several documents, YAML 1.1 numbers, wide mappings).
Every case is built from a `random.Random`, so a seed gives the same cases.
"""
from __future__ import annotations

import copy
import re
import random
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "specs").glob("*.yaml"))

HUGE_INTS = [2 ** 31, 10 ** 9, 2 ** 62, 2 ** 63, 10 ** 30, 10 ** 4000 - 1]  # digits: the text mutations go past 4300
ODD_NUMBERS = [0, -1, -(10 ** 9), 1, 3, 7, 1e-9, 0.001, 0.5, 5, 1e308, float("nan"), float("inf"),
               float("-inf"), 100_000, 10 ** 6] + HUGE_INTS
ODD_SCALARS = ["", "softmaxx", "linaer", "a.b", "a__b", "tokens", "x" * 300, "\u00e9t\u00e9", True, False, None,
               "yes", "064", "1:30", "1e3", "\ud800", "\x00", "a\nb"]
SIZE_KEYS = ["d_model", "n_heads", "n_layers", "max_len", "window", "block", "k", "n_features", "hidden",
             "n_train", "n_keys", "n_values", "max_depth", "max_args", "repeat", "pos_dim", "kernel",
             "num_classes", "batch_size", "steps", "mult", "n_global", "n_random", "rank", "hidden_mult"]


OUTCOMES = ["ok", "clean error", "no key", "multi-line", "traceback", "memory", "hang"]
FILE_LEVEL = ("spec file is empty", "must be a mapping", "binary file", "not UTF-8", "one YAML document",
              "spec file is ", "spec file not found", "an override is", "malformed key path", "empty key path",
              "before the first key")
_LOCATED = re.compile(r"^nasgraph compile: error: (?P<file>.*?)(?::(?P<line>\d+):(?P<col>\d+))?: (?P<rest>.*)$")
_ELEMENT = r"""(?:[A-Za-z0-9_\-]+|\[\d+\]|\[(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")\])"""
_KEY = re.compile(rf"^{_ELEMENT}(?:\.?{_ELEMENT})*: ")


def classify(rc: int | None, err: str, timed_out: bool, killed: bool) -> str:
    """One outcome of OUTCOMES for a finished (or killed) case."""
    if timed_out:
        return "hang"
    if killed or "MemoryError" in err or "can't allocate memory" in err or "std::bad_alloc" in err:
        return "memory"
    if rc == 0:
        return "ok"
    lines = err.strip().splitlines()
    if rc != 2 or "Traceback" in err:
        return "traceback"
    if len(lines) != 1:
        return "multi-line"
    match = _LOCATED.match(lines[0])
    file_level = match and any(p in match.group("rest") for p in FILE_LEVEL)
    if match and match.group("line") and not _KEY.match(match.group("rest")) and not file_level:
        return "no key"
    if match and not match.group("line") and not file_level and not match.group("file").endswith(".yaml") \
            and not match.group("file").startswith("<--set "):
        return "no key"                                  # names neither the spec file (or override) nor a line
    return "clean error"


# Options no example spec sets (newer attention options, teacher_race's keys, MQAR's query options):
# variants of two examples that set them, so the mutations reach those key paths too.
_NEW_CANDIDATES = [{"softmax": {"n_kv_heads": 2, "short_conv": 4, "impl": "math"}},
                   {"gated_deltanet": {"short_conv": 4}}, {"deltanet": {"short_conv": 2}},
                   {"sliding_window": {"window": 32, "sinks": 4, "n_global": 1}}, {"ssd": {"short_conv": 4}}]
_RACE = {"strategy": "teacher_race", "max_cost": 1.5, "race_fraction": 0.3, "race_budget": 0.5,
         "race_min_fraction": 0.1, "teacher_fraction": 0.5, "inherit_min": 1.0, "race_batches": 200}
VARIANTS = {
    "lm_bytes.yaml+options": ("lm_bytes.yaml", {
        "task": {"val_fraction": 0.05, "test_fraction": 0.05},
        "model": {"attention": {"granularity": "layer", "candidates": _NEW_CANDIDATES}}, "search": _RACE}),
    "mqar.yaml+options": ("mqar.yaml", {
        "task": {"n_queries": 4, "query_gaps": "power_law", "power_a": 0.01},
        "model": {"position": "none", "attention": {"granularity": "head", "candidates": [
            {"softmax": {"short_conv": 4}}, *_NEW_CANDIDATES[1:3]]}},
        "search": {**_RACE, "max_cost": 2.5, "inherit_min": 0.5}}),
}


def _merged(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) \
            else copy.deepcopy(value)
    return out


def load_examples() -> list[tuple[str, dict]]:
    """The example specs and their VARIANTS, as (name, data)."""
    examples = {p.name: yaml.safe_load(p.read_text()) for p in EXAMPLES}
    return [*examples.items(), *((name, _merged(examples[base], extra)) for name, (base, extra) in VARIANTS.items())]


def key_paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path in `data` (mappings and lists), parents before children."""
    out = [prefix] if prefix else []
    if isinstance(data, dict):
        for k, v in data.items():
            out += key_paths(v, prefix + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += key_paths(v, prefix + (i,))
    return out


def _parent(data: Any, path: tuple) -> Any:
    for element in path[:-1]:
        data = data[element]
    return data


def odd_value(rng: random.Random, old: Any) -> Any:
    """A replacement for `old`: another type, an odd number or an odd string."""
    choice = rng.random()
    if choice < 0.45:
        return rng.choice(ODD_NUMBERS)
    if choice < 0.7:
        return rng.choice(ODD_SCALARS)
    if choice < 0.8:
        return [] if rng.random() < 0.5 else [rng.choice(ODD_NUMBERS + ODD_SCALARS)]
    if choice < 0.9:
        return {} if rng.random() < 0.5 else {rng.choice(["softmax", "op", "x", "local"]): rng.choice(ODD_NUMBERS)}
    if isinstance(old, list) and old:
        return old + [copy.deepcopy(old[0])]                          # a duplicate item
    return [[[[old]]]]


def mutate_data(rng: random.Random, data: dict) -> dict:
    """One data mutation at a random key path (or a size bomb at a size-like key)."""
    data = copy.deepcopy(data)
    paths = key_paths(data)
    sized = [p for p in paths if isinstance(p[-1], str) and p[-1] in SIZE_KEYS]
    if sized and rng.random() < 0.3:
        path = rng.choice(sized)
        _parent(data, path)[path[-1]] = rng.choice(HUGE_INTS + [0, -1, 10 ** 6, 10 ** 5, 4096, float("nan")])
        return data
    path = rng.choice(paths)
    parent, key = _parent(data, path), path[-1]
    op = rng.random()
    if op < 0.2 and isinstance(parent, dict):
        del parent[key]
    elif op < 0.35 and isinstance(parent, dict):
        new = rng.choice([key[:-1], key + "s", key.upper(), key[::-1], "x_" + key, "a.b"]) if key else "x"
        parent[new] = parent.pop(key)
    elif op < 0.45 and isinstance(parent, dict):
        parent[rng.choice(["extra", "n_layers", "attention", "layers", "norm", "graph", "nodes", "force"])] = \
            rng.choice(ODD_NUMBERS + ODD_SCALARS + [{"placement": "post"}, [{}], 2])
    else:
        parent[key] = odd_value(rng, parent[key])
    return data


def dump(data: Any) -> bytes:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=False, width=1000).encode("utf-8", "surrogatepass")


def _deep(n: int) -> str:
    return "[" * n + "1" + "]" * n


TEXT_MUTATIONS = {
    "control-char": lambda rng, t: _insert(rng, t, rng.choice(["\x00", "\x01", "\x07", "\x1b", "\x7f", "\x85"])),
    "bom": lambda rng, t: "\ufeff" + t,
    "double-bom": lambda rng, t: "\ufeff\ufeff" + t,
    "nul-bytes": lambda rng, t: t[:20] + "\x00\x00\x00" + t[20:],
    "surrogate-escape": lambda rng, t: re.sub(r"(?m)^name: .*$", lambda m: 'name: "a\\udcffb"', t, count=1),
    "deep-nesting": lambda rng, t: t + f"extra: {_deep(rng.choice([70, 500, 5000, 50000]))}\n",
    "deep-block-nesting": lambda rng, t: t + "extra:\n" + "".join(" " * i + f"k{i}:\n" for i in range(1, 300))
    + " " * 300 + "v: 1\n",
    "alias-bomb": lambda rng, t: t + "bench:\n" + _bomb(rng.choice([5, 9, 12])),
    "merge-key": lambda rng, t: t.replace("train:\n", "defaults: &d {steps: 5, lr: 0.1}\ntrain:\n  <<: *d\n", 1),
    "merge-bad": lambda rng, t: t.replace("train:\n", "train:\n  <<: [1, 2]\n", 1),
    "recursive-alias": lambda rng, t: t + "bench: &b {seq_lens: *b}\n",
    "two-documents": lambda rng, t: t + "---\nname: other\n",
    "empty-second-document": lambda rng, t: t + "---\n",
    "octal": lambda rng, t: t.replace("d_model: 64", "d_model: 064"),
    "sexagesimal": lambda rng, t: t.replace("steps: 2000", "steps: 1:30"),
    "yaml11-bool-int": lambda rng, t: t.replace("steps: 2000", "steps: true"),
    "float-exp": lambda rng, t: t.replace("steps: 2000", "steps: 2e3"),
    "huge-int-digits": lambda rng, t: t.replace("d_model: 64", "d_model: " + "9" * rng.choice([20, 5000, 100000])),
    "tabs": lambda rng, t: t.replace("  ", "\t", 1),
    "truncate": lambda rng, t: t[: rng.randrange(1, max(2, len(t)))],
    "crlf": lambda rng, t: t.replace("\n", "\r\n"),
    "wide-mapping": lambda rng, t: t + "bench:\n" + "".join(f"  k{i}: {i}\n" for i in range(rng.choice([1000, 40000]))),
    "wide-task": lambda rng, t: t.replace("task:\n", "task:\n" + "".join(f"  o{i}: 1\n" for i in range(20000)), 1),
    "long-line": lambda rng, t: t + "name2: " + "x" * 900_000 + "\n",
    "huge-file": lambda rng, t: t + "# " + "x" * (1 << 20) + "\n",
    "python-tag": lambda rng, t: t.replace("name: ", "name: !!python/object/apply:os.system ['true'] #", 1),
    "custom-tag": lambda rng, t: t + "train: !include other.yaml\n",
    "binary-tag": lambda rng, t: t.replace("name: ", "name: !!binary aGVsbG8= #", 1),
    "timestamp": lambda rng, t: t.replace("name: ", "name: 2024-01-01 #", 1),
    "null-key": lambda rng, t: t + "~: 1\n",
    "bool-key": lambda rng, t: t + "yes: 1\n",
    "complex-key": lambda rng, t: t + "? [a, b]\n: 1\n",
    "quoted-newline-key": lambda rng, t: t + '"a\\nb": 1\n',
    "flow-unclosed": lambda rng, t: t + "extra: [1, 2\n",
    "only-comment": lambda rng, t: "# nothing\n",
    "empty": lambda rng, t: "",
    "scalar-doc": lambda rng, t: "just text\n",
    "list-doc": lambda rng, t: "- a\n- b\n",
    "null-sections": lambda rng, t: t + "search: ~\nexport:\nbench: []\n",
}
BYTE_MUTATIONS = {
    "invalid-utf8": lambda rng, b: b[:40] + bytes([rng.choice([0xff, 0xc0, 0x80, 0xed])]) + b[40:],
    "latin1": lambda rng, b: b.replace(b"name: ", "name: caf\u00e9 ".encode("latin-1"), 1),
    "utf16": lambda rng, b: b.decode("utf-8").encode("utf-16"),
    "encoded-surrogate": lambda rng, b: b.replace(b"name: ", b"name: \xed\xa0\x80", 1),
    "random-binary": lambda rng, b: bytes(rng.randrange(256) for _ in range(rng.choice([10, 2000]))),
    "gzip-like": lambda rng, b: b"\x1f\x8b\x08\x00" + b[:100],
}


def _insert(rng: random.Random, text: str, s: str) -> str:
    pos = rng.randrange(len(text) + 1)
    return text[:pos] + s + text[pos:]


def _bomb(levels: int) -> str:
    lines = ["  a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        prev = f"*a{i - 1}"
        lines.append(f"  a{i}: &a{i} [{', '.join([prev] * 10)}]")
    return "\n".join(lines) + "\n"


OVERRIDES = ["train.steps=5", "train.stepz=5", "model.atention.candidates=[softmax]", "model.d_model=064",
             "model.n_layers=true", "model.d_model=99999999999", "train.lr=.inf", "search.tau=[0, 1]",
             "search.objective.flops.target=5", "model.ffn.mult=0.001", "model.layers[5].attention=softmax",
             "task.max_len=1000000000", "task.n_train=1000000000000", "model.n_layers=1000000000",
             "model.d_model=1048576", "nosuch.key=1", "model..x=1", "=1", "train.steps", "model.graph=[]",
             "model.nodes={}", "model.d_model=[1, 2]", "name=\udcff", "train.steps=[[[[1]]]]",
             "model.attention.candidates[0]={local: {window: 1000000000}}", "train.batch_size=100000000",
             "search.seeds=[]", "train.seed=-1", "task.vocab_size=3", "model.norm.placement=post"]


def make_case(rng: random.Random) -> tuple[str, bytes, list[str]]:
    """(kind, file bytes, overrides): one hostile case."""
    name, data = rng.choice(load_examples())
    text = EXAMPLES_TEXT[name]
    roll = rng.random()
    if roll < 0.55:
        kind, body = "data", dump(mutate_data(rng, data))
        if rng.random() < 0.3:
            body = dump(mutate_data(rng, yaml.safe_load(body.decode("utf-8", "surrogatepass")) or data))
    elif roll < 0.8:
        kind = rng.choice(sorted(TEXT_MUTATIONS))
        body = TEXT_MUTATIONS[kind](rng, text).encode("utf-8", "surrogatepass")
    elif roll < 0.9:
        kind = rng.choice(sorted(BYTE_MUTATIONS))
        body = BYTE_MUTATIONS[kind](rng, text.encode("utf-8"))
    else:
        kind, body = "override", text.encode("utf-8")
    overrides = [rng.choice(OVERRIDES)] if kind == "override" or rng.random() < 0.1 else []
    return kind, body, overrides


EXAMPLES_TEXT = {p.name: p.read_text() for p in EXAMPLES} | {
    name: dump(data).decode("utf-8") for name, data in load_examples() if name in VARIANTS}
