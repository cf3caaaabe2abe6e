"""Exact multiply-add count of an einsum, from its equation and operand shapes.

Two operands: one multiply-add per point of the full index space, i.e. the product of the sizes of
all distinct indices (outer products included). More operands: torch (without opt_einsum) contracts
left to right, summing an index out as soon as no later operand and not the output needs it; each
pairwise step costs the product of the sizes of the indices of its two operands. One operand: a pure
permutation or diagonal is a view (0); a reduction costs one add per input element.
"""
from __future__ import annotations

import math


class EinsumError(ValueError):
    """An einsum equation that does not match its operands."""


def _expand_ellipsis(term: str, rank: int, ell: str) -> str:
    """Replace '...' in `term` by the letters of `ell` that fill the operand's `rank`."""
    if "..." not in term:
        if len(term) != rank:
            raise EinsumError(f"einsum term '{term}' has {len(term)} indices for an operand of rank {rank}")
        return term
    n = rank - (len(term) - 3)
    if n < 0:
        raise EinsumError(f"einsum term '{term}' has more indices than its operand's rank {rank}")
    return term.replace("...", ell[len(ell) - n:] if n else "")


def parse(equation: str, shapes: list[list[int]]) -> tuple[list[str], str, dict[str, int]]:
    """-> (input terms, output term, size of each index), with '...' expanded to spare letters."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise EinsumError(f"einsum '{equation}' names {len(terms)} operands, got {len(shapes)}")
    spare = "".join(c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in eq)
    ell_rank = max((len(s) - (len(t) - 3) for t, s in zip(terms, shapes) if "..." in t), default=0)
    ell = spare[:ell_rank]
    terms = [_expand_ellipsis(t, len(s), ell) for t, s in zip(terms, shapes)]
    if arrow:
        out = rhs.replace("...", ell)
    else:  # implicit mode: broadcast dims, then the indices used exactly once, sorted
        once = sorted(c for c in set("".join(terms)) if "".join(terms).count(c) == 1 and c not in ell)
        out = ell + "".join(once)
    sizes: dict[str, int] = {}
    for term, shape in zip(terms, shapes):
        for c, n in zip(term, shape):
            sizes[c] = max(sizes.get(c, 1), int(n))  # size-1 dims broadcast
    return terms, out, sizes


def einsum_macs(equation: str, shapes: list[list[int]]) -> int:
    """Multiply-adds of torch.einsum(equation, *operands of `shapes`); see the module docstring."""
    terms, out, sizes = parse(equation, shapes)
    space = lambda labels: math.prod(sizes[c] for c in set(labels))  # noqa: E731
    if len(terms) == 1:
        return 0 if set(terms[0]) <= set(out) else space(terms[0])
    macs, current = 0, terms[0]
    for i, nxt in enumerate(terms[1:], start=1):
        macs += space(current + nxt)
        needed = set(out).union(*terms[i + 1:])
        current = "".join(sorted(set(current + nxt) & needed))
    return macs
