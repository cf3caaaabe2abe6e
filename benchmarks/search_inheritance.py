"""How much of each attention type's student inherits from a softmax teacher (teacher_race's rule).

teacher_race counts a homogeneous student (adapted briefly from the teacher's weights) as evidence
against its type only when it inherits nearly all of its weights: `inherit_min` of its parameter
elements copied from the teacher by name and shape (nasgraph.search.trials.inherited_fraction). This
prints the fraction of every registered type, in the model of each fidelity-suite regime and of the
README's byte-level LM search, so the threshold can be read against it. Nothing is trained.

    python benchmarks/search_inheritance.py              # markdown table on stdout
    python benchmarks/search_inheritance.py --json out.json
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import yaml

from fidelity_tasks import FULL, spec_template
from nasgraph.attention import registry
from nasgraph.graph import compile_spec
from nasgraph.model import GraphModule
from nasgraph.search.trials import inherited_fraction
from nasgraph.spec import load_spec

# the README's LM search (specs/lm_bytes.yaml with its overrides), on a tiny local text
LM = {"name": "lm", "task": {"kind": "lm", "max_len": 128},
      "model": {"d_model": 64, "n_heads": 2, "n_layers": 2, "ffn": {"mult": 2}, "norm": {"type": "layer"}},
      "train": {"steps": 1, "batch_size": 2}}
# options a type needs to build at these sizes (the searches' own: window 16 in the suite, 32 in the LM)
OPTIONS = {"local": {"window": 16}, "sliding_window": {"window": 16}, "aft_local": {"window": 16}}
# forms of a type whose parameters differ from its plain form's (grouped-query heads, the short conv)
VARIANTS = [("softmax", {"n_kv_heads": 1}), ("softmax", {"short_conv": 4}), ("gated_deltanet", {"short_conv": 4})]


def row_name(name: str, options: dict) -> str:
    return name + (f"({', '.join(f'{k}={v}' for k, v in options.items())})" if options else "")


def model_of(base: dict, candidate, folder: Path):
    spec = {**base, "model": {**base["model"], "attention": {"candidates": [candidate]}}}
    path = folder / f"{json.dumps(candidate, sort_keys=True)[:40].replace('/', '_')}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return GraphModule(compile_spec(load_spec(path)))


def fractions(base: dict, folder: Path) -> dict[str, str | float]:
    teacher = model_of(base, "softmax", folder).state_dict()
    out = {}
    for name, options in [(n, OPTIONS.get(n, {})) for n in registry.names()] + VARIANTS:
        try:
            model = model_of(base, {name: options} if options else name, folder)
            out[row_name(name, options)] = inherited_fraction(model, teacher)
        except Exception:                       # a type this regime cannot build
            causal = base["task"]["kind"] == "lm"
            out[row_name(name, options)] = "n/a (no causal form)" if causal else "n/a (causal only)"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="also write the table as JSON here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        text = folder / "text.txt"
        text.write_text("the quick brown fox jumps over the lazy dog\n" * 200)
        regimes = {name: spec_template(name, FULL[name], folder / "data")
                   for name in ("listops", "assoc_recall", "local_motif", "motif_cls", "text_long")}
        regimes["lm (README search)"] = {**LM, "task": {**LM["task"], "path": str(text)}}
        table = {name: fractions(base, folder) for name, base in regimes.items()}
    names = list(table)
    print("| type | " + " | ".join(names) + " |\n" + "|---" * (len(names) + 1) + "|")
    for t in table[names[0]]:
        cells = [f"{v:.2%}" if isinstance(v, float) else v for v in (table[n][t] for n in names)]
        print(f"| {t} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
