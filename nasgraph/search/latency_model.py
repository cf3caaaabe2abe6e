"""A latency predictor for sub-networks of an elastic space: ridge regression (numpy) on a few
structural features, fit to ONNX Runtime latencies measured on this machine, minimising the relative
error (rows weighted by 1 / measured latency).

Features at the measured (batch, T): 1, the sum over layers of d_model^2 (attention projections) and of
d_model^2 * ffn mult (FFN), and per attention candidate its layers (fixed cost per layer) and their
summed d_model (the attention core at that T). Few features: the fit sees a dozen timed sub-networks.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nasgraph.graph.subnet import SubNet


def features(sub: SubNet, labels: list[str], candidates: list[list[str]]) -> np.ndarray:
    """(F,) features of `sub`; `labels` fixes the order of the per-candidate features."""
    d = float(sub.d_model)
    row = [1.0, sub.n_layers * d * d, sum(d * d * m for m in sub.ffn_mult)]
    for label in labels:
        layers = sum(candidates[i][a] == label for i, a in enumerate(sub.attention))
        row += [layers, layers * d]
    return np.asarray(row, dtype=np.float64)


@dataclass
class LatencyModel:
    labels: list[str]              # attention candidates, in feature order
    coef: list[float]
    scale: list[float]             # feature standard deviations the coefficients were fit on
    ridge: float

    @classmethod
    def fit(cls, subs: list[SubNet], ms: list[float], candidates: list[list[str]],
            ridge: float = 1e-3) -> "LatencyModel":
        """Weighted ridge fit of latency `ms` (one per sub-network)."""
        labels = sorted({l for layer in candidates for l in layer})
        X = np.stack([features(s, labels, candidates) for s in subs])             # (N, F)
        y = np.asarray(ms, dtype=np.float64)                                      # (N,)
        scale = X.std(axis=0)
        scale[scale == 0] = 1.0
        scale[0] = 1.0                                                            # the intercept
        A = X / scale / y[:, None]                                                # relative error rows
        penalty = ridge * np.eye(A.shape[1])
        penalty[0, 0] = 0.0
        coef = np.linalg.solve(A.T @ A + penalty, A.T @ np.ones_like(y))
        return cls(labels, coef.tolist(), scale.tolist(), ridge)

    def predict(self, sub: SubNet, candidates: list[list[str]]) -> float:
        x = features(sub, self.labels, candidates) / np.asarray(self.scale)
        return float(max(x @ np.asarray(self.coef), 1e-6))

    def to_json(self) -> dict:
        return {"labels": self.labels, "coef": self.coef, "scale": self.scale, "ridge": self.ridge}


def relative_errors(model: LatencyModel, subs: list[SubNet], ms: list[float],
                    candidates: list[list[str]]) -> list[float]:
    return [abs(model.predict(s, candidates) - m) / m for s, m in zip(subs, ms)]


def cross_validated_error(subs: list[SubNet], ms: list[float], candidates: list[list[str]],
                          folds: int = 5) -> float | None:
    """Median relative error on held-out sub-networks (k-fold); None with fewer than 2 * folds samples."""
    if len(subs) < 2 * folds:
        return None
    errors = []
    for k in range(folds):
        test = [i for i in range(len(subs)) if i % folds == k]
        train = [i for i in range(len(subs)) if i % folds != k]
        model = LatencyModel.fit([subs[i] for i in train], [ms[i] for i in train], candidates)
        errors += relative_errors(model, [subs[i] for i in test], [ms[i] for i in test], candidates)
    return float(np.median(errors))
