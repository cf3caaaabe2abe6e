"""The short causal convolution of Mamba-2 and of the flash-linear-attention layers.

A depthwise convolution over the last K positions plus SiLU on projected features (q, k, v; ssd: x,
B, C). It lets one layer mix a token with its predecessors: the key-value binding that recall (MQAR)
needs without a previous-token head. Used by the recurrent types and by softmax (`short_conv: K`).
Exact in the parallel form (a zero history at the start; padding sits after the real tokens, so no
real position reads it); the decoding forms carry the last K - 1 inputs as a state tensor ("conv").
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ShortConv(nn.Module):
    """Depthwise causal convolution over time plus SiLU: (B, T, C) -> (B, T, C); y_t reads u_{t-K+1..t}."""

    def __init__(self, channels: int, kernel: int):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel, groups=channels)
        self.kernel = kernel

    def forward(self, u: Tensor, history: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """u (B, T, C), history (B, K-1, C) (None: zeros before the start) -> (y (B, T, C), the inputs at
        the last K - 1 positions (B, K-1, C): the history of the next call)."""
        full = F.pad(u, (0, 0, self.kernel - 1, 0)) if history is None else torch.cat([history, u], 1)  # (B, K-1+T, C)
        y = self.conv(full.transpose(1, 2))                             # (B, C, T)
        return F.silu(y).transpose(1, 2), full[:, full.shape[1] - (self.kernel - 1):]

    def state_shape(self, batch) -> tuple[str, tuple]:
        """The decoding state entry: ("conv", (batch, K-1, C))."""
        return "conv", (batch, self.kernel - 1, self.conv.in_channels)


def convolved(conv: ShortConv | None, *parts: Tensor, history: Tensor | None = None
              ) -> tuple[list[Tensor], Tensor | None]:
    """The short convolution over the concatenated parts (each (B, T, c)), split back, and its next
    history (see ShortConv); the parts as they are and None without one."""
    if conv is None:
        return list(parts), None
    y, tail = conv(torch.cat(parts, -1), history)                      # (B, T, c total), (B, K-1, c total)
    return list(y.split([p.shape[-1] for p in parts], -1)), tail
