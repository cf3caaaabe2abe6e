"""The pick against every other scored architecture, and per choice point, with the error of each gap.

A gap's standard error is paired when both architectures were scored on the same held-out examples
(nasgraph.search.paired: per-example differences; plus the spread over seeds with two or more), else
the larger of the pooled seed spread and the two binomial evaluation errors. A gap of at least
DECISIVE standard errors is decisive; below that the two are tied within noise. Costs within
COST_TIE of each other count as equal.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from nasgraph.search.paired import paired_over_seeds
from nasgraph.textfmt import metric_delta

DECISIVE = 2.0
COST_TIE = 0.01


@dataclass
class Contrast:
    other: object                  # the Architecture compared with
    margin: float                  # mine - other's, in metric units
    se: float | None
    paired: bool

    @property
    def z(self) -> float | None:
        """margin / se; with a zero error (identical answers) 0 for no gap, else infinite."""
        if self.se is None:
            return None
        if self.se == 0:
            return 0.0 if self.margin == 0 else math.copysign(math.inf, self.margin)
        return self.margin / self.se

    @property
    def verdict(self) -> str:
        """"worse" (the other decisively below), "better" (decisively above) or "tied"; "unknown" without an error."""
        z = self.z
        return "unknown" if z is None else "worse" if z >= DECISIVE else "better" if z <= -DECISIVE else "tied"


def cost_axis(a) -> float | None:
    """The cost every comparison of architectures uses: measured latency, else FLOPs, else the evidence's."""
    return a.latency_ms if a.latency_ms is not None else a.flops if a.flops is not None else a.cost


def cheaper_or_equal(a, b) -> bool:
    ca, cb = cost_axis(a), cost_axis(b)
    return ca is not None and cb is not None and ca <= cb


def cheaper(a, b) -> bool:
    """a costs less than b by more than COST_TIE (relative)."""
    ca, cb = cost_axis(a), cost_axis(b)
    return ca is not None and cb is not None and ca < cb * (1 - COST_TIE)


def unpaired_se(a, b, noise: float | None) -> float | None:
    """Standard error of mean(a) - mean(b): pooled seed spread and binomial evaluation noise, the larger."""
    parts = []
    if noise is not None:
        parts.append(noise * math.sqrt(1 / len(a.scores) + 1 / len(b.scores)))
    if a.eval_n and b.eval_n and all(0 <= x.mean <= 1 for x in (a, b)):
        binom = lambda x: x.mean * (1 - x.mean) / (x.eval_n * len(x.scores))  # noqa: E731
        parts.append(math.sqrt(binom(a) + binom(b)))
    return max(parts) if parts else None


def compare(a, b, noise: float | None) -> Contrast:
    """a against b: paired on their shared examples when both recorded them, else unpaired."""
    paired = paired_over_seeds(a.examples, b.examples)
    if paired is not None:
        return Contrast(b, paired[0], paired[1], True)
    return Contrast(b, a.mean - b.mean, unpaired_se(a, b, noise), False)


def _differs_only_at(x, y, node: str) -> bool:
    return x.choice[node] != y.choice[node] and all(x.choice[n] == y.choice[n] for n in x.choice if n != node)


def point_contrasts(pick, archs: list, node: str, candidates: list[str], noise: float | None) -> list[dict]:
    """Per other type at `node`: the effect of replacing the pick's type there, measured between two scored
    architectures that differ only at `node` (the pick itself when scored, else the one closest to it)."""
    scored = [a for a in archs if a.scores]
    mine = [x for x in scored if x.choice[node] == pick.choice[node]]
    found: dict[str, dict] = {}
    for x in sorted(mine, key=lambda x: -sum(x.choice[n] == pick.choice[n] for n in x.choice)):
        for y in scored:
            if not _differs_only_at(x, y, node):
                continue
            label = "/".join(dict.fromkeys(candidates[i] for i in y.choice[node]))
            if label in found:
                continue
            c = compare(x, y, noise)
            found[label] = {"type": label, "context": x.name, "margin": c.margin, "se": c.se, "paired": c.paired,
                            "verdict": c.verdict, "cheaper": cheaper(y, x), "costlier": cheaper(x, y),
                            "kl": y.kl if y.kl and not x.kl else None}
    return list(found.values())


def add_point_contrasts(points: list[dict], pick, archs: list, noise: float | None) -> None:
    """Fill `contrasts`, `runner_up` and `decided` of the choice points the supernet had no weights for."""
    for row in points:
        if row["probabilities"] is not None or row["unit_scores"] is not None:
            continue
        found = point_contrasts(pick, archs, row["node"], row["candidates"], noise)
        if found:
            closest = min(found, key=lambda c: c["margin"])
            row.update(contrasts=found, runner_up=closest["type"],
                       decided=point_decided(found) and row["seeds_agreeing"] == row["seeds"])


def point_decided(contrasts: list[dict]) -> bool:
    """Decided: every other type there is decisively worse, or tied but not cheaper."""
    return bool(contrasts) and all(c["verdict"] == "worse" or (c["verdict"] == "tied" and not c["cheaper"])
                                   for c in contrasts)


def contrast_text(c: dict, metric: str) -> str:
    """ "linear -29.0 +-1.3 pts, KL 0.307, cheaper (decisive)" | "local +0.6 +-0.4 pts,
    cheaper (tie)": the other type's gap (and its KL when measured against the pick's own teacher)."""
    gap = -c["margin"]
    sign = "+" if gap >= 0 else "-"
    se = f" +-{metric_delta(metric, c['se'])}" if c["se"] else ""
    how = {"worse": "decisive", "better": "decisively better", "tied": "tie", "unknown": "noise unknown"}[c["verdict"]]
    cost = ", cheaper" if c["cheaper"] else ", costlier" if c["costlier"] else ""
    kl = f", KL {c['kl']:.3f}" if c.get("kl") is not None else ""
    return f"{c['type']} {sign}{metric_delta(metric, abs(gap))}{se}{kl}{cost} ({how})"
