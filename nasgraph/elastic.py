"""The elastic weight-sharing supernet (HAT / Once-for-All / BigNAS): one GraphModule of the largest
sub-network holds every weight; a sub-network is the GraphModule of its own graph (the same spec with
one value per dimension, `nasgraph.graph.elastic.compile_subnet`) run on leading slices of those
weights: the first d_model columns and rows of every linear layer, embedding and norm, the first
hidden units of every FFN, the first k layers. No second model definition: the slices are taken by
parameter name and shape, so every op and attention type of the registries is elastic as it is.

An attention choice point of the supernet (a MixedAttention) gives a sub-network's plain attention
the weights of its picked candidate (`candidates.<c>.*`) and the layer's shared `out_proj`.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from typing import Callable

import torch
from torch import nn
from torch.func import functional_call

from nasgraph.errors import NasgraphError
from nasgraph.graph.expand import module_key
from nasgraph.graph.subnet import SubNet
from nasgraph.model import GraphModule

_ATTENTION = re.compile(r"^nodes\.(L\d+__attention)\.inner\.(.+)$")


def leading_slice(src: torch.Tensor, shape: torch.Size, name: str) -> torch.Tensor:
    """The leading block of `src` with `shape` (a view: gradients reach the shared weight)."""
    if src.dim() != len(shape) or any(b > a for a, b in zip(src.shape, shape)):
        raise NasgraphError(f"elastic supernet: '{name}' is {tuple(shape)} in the sub-network but "
                            f"{tuple(src.shape)} in the supernet; a sub-network takes leading slices, so no dim "
                            f"may grow (a per-head parameter with fewer heads of more width cannot be sliced: "
                            f"give n_heads one value)")
    return src[tuple(slice(0, n) for n in shape)]


class ElasticSupernet(nn.Module):
    """`supernet`: a GraphModule of the largest sub-network; `space`: its graph's elastic record;
    `build(sub)`: the graph of `sub` (nasgraph.graph.elastic.compile_subnet)."""

    def __init__(self, supernet: GraphModule, space: dict, build: Callable[[SubNet], object], cache: int = 64):
        super().__init__()
        self.supernet, self.space = supernet, space
        self.build = build
        self.mixed = set(map(module_key, supernet.mixed_layers()))
        self._modules_cache: OrderedDict[SubNet, GraphModule] = OrderedDict()
        self.cache_size = cache

    def module(self, sub: SubNet) -> GraphModule:
        """The sub-network's own GraphModule (weights of its own, unused by `forward`), cached."""
        if sub in self._modules_cache:
            self._modules_cache.move_to_end(sub)
            return self._modules_cache[sub]
        with torch.random.fork_rng():              # building must not move the training's random stream
            m = GraphModule(self.build(sub))
        self._modules_cache[sub] = m
        if len(self._modules_cache) > self.cache_size:
            self._modules_cache.popitem(last=False)
        return m

    def source(self, name: str, sub: SubNet) -> str:
        """The supernet tensor a sub-network tensor is sliced from."""
        hit = _ATTENTION.match(name)
        if hit and hit.group(1) in self.mixed and not hit.group(2).startswith("out_proj."):
            layer = int(hit.group(1)[1:].split("__")[0])
            return f"nodes.{hit.group(1)}.inner.candidates.{sub.attention[layer]}.{hit.group(2)}"
        return name

    def sliced(self, sub: SubNet, model: GraphModule | None = None) -> dict[str, torch.Tensor]:
        """Parameters and persistent buffers of `sub`, as slices of the supernet's (by name)."""
        model = model or self.module(sub)
        own = dict(self.supernet.named_parameters())
        own.update(self.supernet.named_buffers())
        want = {k: v for k, v in model.state_dict(keep_vars=True).items()}
        out = {}
        for name, tensor in want.items():
            src = self.source(name, sub)
            if src not in own:
                raise NasgraphError(f"elastic supernet: '{name}' of the sub-network has no counterpart "
                                    f"'{src}' in the supernet")
            out[name] = leading_slice(own[src], tensor.shape, name)
        return out

    def forward(self, sub: SubNet, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of `sub` on its slices of the shared weights: (B, C) or (B, T, V)."""
        model = self.module(sub)
        model.train(self.training)
        return functional_call(model, self.sliced(sub, model), (tokens,), {"mask": mask}, strict=False)

    def extract(self, sub: SubNet) -> GraphModule:
        """A standalone model of `sub` holding copies of its slices (scoring, export, fine-tuning)."""
        with torch.random.fork_rng():
            model = GraphModule(self.build(sub))
        with torch.no_grad():
            model.load_state_dict({k: v.detach().clone() for k, v in self.sliced(sub, model).items()})
        return model.train(self.training)
