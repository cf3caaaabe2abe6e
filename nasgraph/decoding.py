"""Token-by-token decoding of a causal language model (a GraphModule ending in lm_head).

    logits, state = prefill(model, tokens)          # tokens (B, T) -> logits (B, T, V), state after T
    logits, state = step(model, token, state, pos)  # token (B, 1) at position pos -> logits (B, V)

The state is a flat tuple of tensors: the attention layers' states in graph order, each layer's in the
order its type describes (`state_spec` names them, with shapes and dtypes). Embeddings add the
position of each token (pos onwards); norms, FFNs, residual adds and the head are position-wise and
run on the one new position. prefill + step reproduce the full forward pass's logits (to rounding),
so a generation loop pays the prompt once and then one position per token. Call in eval mode, under
torch.no_grad() unless gradients are wanted.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from nasgraph.attention._decode import split_state
from nasgraph.errors import NasgraphError
from nasgraph.graph.expand import INPUT, module_key
from nasgraph.model import GraphModule
from nasgraph.ops.attention import AttentionOp, HeteroAttention
from nasgraph.ops.embedding import Embedding
from nasgraph.ops.mixed_attention import MixedAttention

State = tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class StateTensor:
    """One tensor of the decoding state."""

    layer: str                          # graph node of the attention layer
    name: str                           # "<layer>.<tensor>", e.g. "block0.attn.k_cache"
    shape: tuple[int | str, ...]        # ints, "B" (batch) and "S" (a cache growing one position per token)
    dtype: torch.dtype
    fill: float = 0.0                   # the value it starts at (init_state)

    @property
    def grows(self) -> bool:
        return "S" in self.shape


def attention_layers(model: GraphModule) -> dict[str, nn.Module]:
    """Graph node -> the attention layer that decodes it, in graph order; NasgraphError naming the node
    when the model cannot decode (a choice point, a non-causal layer, a type without a decoding form, an
    op that mixes positions)."""
    layers = {}
    for n in model.order:
        op = model.nodes[module_key(n)]
        if isinstance(op, AttentionOp):
            layers[n] = _decodable_layer(n, op)
        elif not (isinstance(op, Embedding) or op.positionwise):
            raise NasgraphError(f"node '{n}' (op {op.name}) mixes positions outside attention, so the model "
                                f"cannot decode token by token; decoding needs a causal language model (lm_head)")
    return layers


def _decodable_layer(node: str, op: AttentionOp) -> nn.Module:
    layer = op.inner
    if isinstance(layer, MixedAttention):
        raise NasgraphError(f"attention '{node}' is a search choice point ({', '.join(layer.labels)}); decode a "
                            f"derived model (`nasgraph derive`, then train it)")
    if not op.config.causal:
        raise NasgraphError(f"attention '{node}' is not causal; only a causal model (an lm task) decodes")
    for module in (layer.groups if isinstance(layer, HeteroAttention) else [layer]):
        if not module.caps.decodable:
            raise NasgraphError(f"attention '{node}': type '{module.name}' has no decoding form: "
                                f"{module.caps.decode_note}")
    return layer


def state_spec(model: GraphModule, batch: int | str = "B") -> list[StateTensor]:
    """Every state tensor, in the order of the state tuple."""
    dtype = next(model.parameters()).dtype
    return [StateTensor(n, f"{n}.{name}", tuple(shape), dtype, fill)
            for n, layer in attention_layers(model).items()
            for (name, shape), fill in zip(layer.state_shapes(batch), layer.state_fills())]


def init_state(model: GraphModule, batch: int) -> State:
    """The state before the first token (empty caches)."""
    weight = next(model.parameters())
    return tuple(t for layer in attention_layers(model).values()
                 for t in layer.init_state(batch, device=weight.device, dtype=weight.dtype))


def state_bytes(state: State) -> int:
    """Memory held by a state, in bytes."""
    return sum(t.numel() * t.element_size() for t in state)


def prefill(model: GraphModule, tokens: torch.Tensor) -> tuple[torch.Tensor, State]:
    """tokens (B, T) int64, no padding -> (logits (B, T, V), the state after position T - 1)."""
    layers, states = attention_layers(model), []

    def attend(node: str, x: torch.Tensor) -> torch.Tensor:
        y, state = layers[node].prefill(x)                            # (B, T, D)
        states.append(state)
        return y

    logits = _run(model, tokens, 0, attend)                           # (B, T, V)
    return logits, tuple(t for s in states for t in s)


def step(model: GraphModule, token: torch.Tensor, state: State, pos) -> tuple[torch.Tensor, State]:
    """token (B, 1) int64 at position pos (an int or a 0-d int64 tensor: the number of tokens before it)
    -> (logits (B, V), new state)."""
    layers, new = attention_layers(model), []
    try:
        parts = dict(zip(layers, split_state(layers.values(), state)))
    except ValueError as err:
        raise NasgraphError(f"{err} (see state_spec(model))") from None

    def attend(node: str, x: torch.Tensor) -> torch.Tensor:
        y, layer_state = layers[node].step(x, parts[node], pos)       # (B, 1, D)
        new.append(layer_state)
        return y

    logits = _run(model, token, pos, attend)                          # (B, 1, V)
    return logits[:, -1], tuple(t for s in new for t in s)


def _run(model: GraphModule, tokens: torch.Tensor, pos, attend: Callable[[str, torch.Tensor], torch.Tensor]
         ) -> torch.Tensor:
    """The graph in topological order with embeddings at offset pos and attention through `attend`."""
    values: dict[str, torch.Tensor] = {INPUT: tokens}
    for n in model.order:
        op = model.nodes[module_key(n)]
        args = [values[i] for i in model.inputs[n]]
        if isinstance(op, Embedding):
            values[n] = op.embed_at(args[0], pos)                      # (B, T, D)
        elif isinstance(op, AttentionOp):
            values[n] = attend(n, args[0])                             # (B, T, D)
        else:
            values[n] = op(*args)                                      # position-wise
        for i in model.release[n]:
            del values[i]
    return values[model.output]


class EagerDecoder:
    """nasgraph.generation's Decoder for an eager model: numpy token ids in, numpy logits out, batch 1."""

    def __init__(self, model: GraphModule):
        attention_layers(model)                                       # refuses a model that cannot decode
        self.model = model.eval()
        self.device = next(model.parameters()).device                # ids go there, logits come back to numpy

    @torch.no_grad()
    def prefill(self, ids):
        logits, state = prefill(self.model, torch.from_numpy(ids)[None].to(self.device))  # (1, T, V)
        return logits[0, -1].float().cpu().numpy(), state

    @torch.no_grad()
    def step(self, token: int, state: State, pos: int):
        logits, state = step(self.model, torch.tensor([[token]], device=self.device), state, pos)  # (1, V)
        return logits[0].float().cpu().numpy(), state
