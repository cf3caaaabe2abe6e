"""Documented limits on spec files and the models they describe (docs/spec.md, "Limits").

The text limits guard the loader (a spec is a small, hand-written file); the size limits guard
everything after it: a spec past them is refused with its estimate before anything is allocated, and
`--force` builds it anyway (nasgraph.graph.resources).
"""
from __future__ import annotations

# -- the file ------------------------------------------------------------------------------------------
MAX_SPEC_BYTES = 1 << 20       # 1 MiB of YAML
MAX_DEPTH = 64                 # nesting of mappings and lists
MAX_VALUES = 50_000            # values after expanding aliases ("billion laughs" guard)
INT64 = (-(1 << 63), (1 << 63) - 1)   # integers a spec may hold

# -- the model -----------------------------------------------------------------------------------------
MAX_NODES = 20_000             # op-graph nodes after expanding `repeat` and `n_layers` (+ candidates)
MAX_FORWARD_FLOPS = 10 ** 12   # one forward pass of one sequence at task.max_len (1 multiply-add = 1)
MAX_EXAMPLES = 10 ** 8         # generated examples (n_train + n_val + n_test)
MAX_LISTED = 20                # names listed in one error message
