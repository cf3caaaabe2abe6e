"""A latency predictor for sub-networks of an elastic space: ridge regression (numpy) on structural
features, fit to ONNX Runtime latencies measured on this machine, minimising the relative error (rows
weighted by 1 / measured latency); the ridge strength is chosen by leave-one-out error (closed form).

Features at the measured (batch, T), each a cost that scales with one part of the network:
1 (fixed), d_model (embedding, final norm, head), layers (per-layer ops: norms, residuals), the sum
over layers of d_model^2 (attention projections) and of d_model^2 * ffn mult (FFN); per attention
candidate its layers times d_model (the core's width), times n_heads (per-head work: the T x T softmax
of each head) and times d_model^2 / n_heads (a per-head state: linear attention's dh x dh).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nasgraph.graph.subnet import SubNet

RIDGES = (1e-6, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)   # tried by leave-one-out when no ridge is given


def features(sub: SubNet, labels: list[str], candidates: list[list[str]]) -> np.ndarray:
    """(F,) features of `sub`; `labels` fixes the order of the per-candidate features."""
    d, h = float(sub.d_model), float(sub.n_heads)
    row = [1.0, d, float(sub.n_layers), sub.n_layers * d * d, sum(d * d * m for m in sub.ffn_mult)]
    for label in labels:
        layers = sum(candidates[i][a] == label for i, a in enumerate(sub.attention))
        row += [layers * d, layers * h, layers * d * d / h]
    return np.asarray(row, dtype=np.float64)


def _solve(A: np.ndarray, ridge: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridge coefficients for rows A (target 1 each: relative error) and the leave-one-out residuals."""
    penalty = ridge * np.eye(A.shape[1])
    penalty[0, 0] = 0.0                                                           # the intercept is free
    inv = np.linalg.pinv(A.T @ A + penalty)                                       # (F, F)
    coef = inv @ A.T @ np.ones(len(A))                                            # (F,)
    leverage = np.einsum("nf,fg,ng->n", A, inv, A)                                # (N,) hat diagonal
    loo = (1.0 - A @ coef) / np.clip(1.0 - leverage, 1e-9, None)                  # (N,) relative errors
    return coef, loo


@dataclass
class LatencyModel:
    labels: list[str]              # attention candidates, in feature order
    coef: list[float]
    scale: list[float]             # feature standard deviations the coefficients were fit on
    ridge: float
    loo_median_rel_error: float | None = None   # of the chosen ridge, over the fit samples

    @classmethod
    def fit(cls, subs: list[SubNet], ms: list[float], candidates: list[list[str]],
            ridge: float | None = None) -> "LatencyModel":
        """Weighted ridge fit of latency `ms` (one per sub-network); `ridge` None: the one of RIDGES with
        the smallest leave-one-out median relative error."""
        labels = sorted({l for layer in candidates for l in layer})
        X = np.stack([features(s, labels, candidates) for s in subs])             # (N, F)
        y = np.asarray(ms, dtype=np.float64)                                      # (N,)
        scale = X.std(axis=0)
        scale[scale == 0] = 1.0
        scale[0] = 1.0                                                            # the intercept
        A = X / scale / y[:, None]                                                # (N, F) relative error rows
        fits = {r: _solve(A, r) for r in ((ridge,) if ridge is not None else RIDGES)}
        best = min(fits, key=lambda r: (float(np.median(np.abs(fits[r][1]))), -r))
        coef, loo = fits[best]
        return cls(labels, coef.tolist(), scale.tolist(), best, float(np.median(np.abs(loo))))

    def predict(self, sub: SubNet, candidates: list[list[str]]) -> float:
        x = features(sub, self.labels, candidates) / np.asarray(self.scale)
        return float(max(x @ np.asarray(self.coef), 1e-6))

    def to_json(self) -> dict:
        return {"labels": self.labels, "coef": self.coef, "scale": self.scale, "ridge": self.ridge,
                "loo_median_rel_error": self.loo_median_rel_error}


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
