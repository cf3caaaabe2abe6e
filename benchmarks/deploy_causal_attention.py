"""Causal softmax attention, one layer's core, in ONNX Runtime against torch's CPU SDPA (issue 12).

The core takes x (1, T, 3 H dh) (the projected q, k, v) to (1, T, H dh). Forms:
- `full`: causal softmax over all T positions (the `softmax` type without padding);
- `block-<w>`: causal softmax inside blocks of w positions (the causal `local` type: T padded up to
  a multiple of w, the blocks a batch of w-position sequences).
Paths, each parity-checked against eager `is_causal` before timing:
- `eager-causal`: torch SDPA with is_causal=True (what the types call without a padding mask);
- `eager-mask`: torch SDPA with the additive causal mask (what they called before);
- `ort-gqa`: exported with exporters.fused_attention's translations (is_causal -> one
  com.microsoft.GroupQueryAttention, causal, (B, H) folded into its batch);
- `ort-decomposed`: the same export without them (torchlib: MatMul, causal mask, Softmax, MatMul);
- `ort-mask`: the mask form exported (with the translations, which leave a mask call decomposed);
- `ort-mha-full`: for scale only, NOT causal: the same call without the causal mask through
  MultiHeadAttention's flash path (the work a kernel that skipped nothing would do; no parity).
The figure is the calling thread's CPU time p50 at 1 thread (the process's at more), in alternating
rounds so every path sees the same load.

    OMP_WAIT_POLICY=PASSIVE nice -n 10 python benchmarks/deploy_causal_attention.py --lens 512,2048
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from exporters.fused_attention import attention_kernels, contrib_translations  # noqa: E402
from exporters.latency import LatencyResult, measure, ort_latency, torch_threads  # noqa: E402
from exporters.onnx_export import export_onnx  # noqa: E402
from exporters.runtime import make_session  # noqa: E402
from nasgraph.attention.base import causal_bias  # noqa: E402


class CausalCore(torch.nn.Module):
    """x (B, T, 3 H dh) -> causal softmax attention (B, T, H dh); block > 0: inside blocks of that many
    positions; mask: the additive causal mask instead of is_causal; full: no causal mask at all."""

    def __init__(self, heads: int, block: int = 0, mask: bool = False, full: bool = False):
        super().__init__()
        self.heads, self.block, self.mask, self.full = heads, block, mask, full

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T = x.shape[:2]
        q, k, v = x.unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4)   # (3, B, H, T, dh)
        if self.block:
            w = self.block
            nb = (T + w - 1) // w
            q, k, v = (F.pad(t, [0, 0, 0, nb * w - T]).unflatten(2, (nb, w)).flatten(1, 2)
                       for t in (q, k, v))                                         # (B, H*nb, w, dh)
        L = q.shape[2]
        if self.full:
            out = F.scaled_dot_product_attention(q, k, v)                          # (B, H | H*nb, L, dh)
        elif self.mask:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_bias(L, x.device, x.dtype))
        else:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)          # (B, H | H*nb, L, dh)
        out = out.unflatten(1, (self.heads, -1)).flatten(2, 3)[:, :, :T]          # (B, H, T, dh)
        return out.transpose(1, 2).flatten(2)                                     # (B, T, H dh)


def export(core: CausalCore, dh: int, T: int, path: Path, translations: bool) -> Path:
    x = torch.randn(1, T, 3 * core.heads * dh)
    return export_onnx(core, (x,), path, dynamic_axes={"x": {0: "batch", 1: "seq"}}, input_names=["x"],
                       output_names=["y"], overwrite=True, fallback=False,
                       translations=contrib_translations() if translations else None)


def bench(form: str, T: int, opts, work: Path) -> list[dict]:
    H, dh = opts.heads, opts.head_size
    block = int(form.split("-")[1]) if form.startswith("block") else 0
    x = torch.from_numpy(np.random.default_rng(T).standard_normal((1, T, 3 * H * dh), dtype=np.float32))
    cores = {"causal": CausalCore(H, block), "mask": CausalCore(H, block, mask=True)}
    eager = {f"eager-{k}": (lambda c=c: c(x)) for k, c in cores.items()}
    with torch.inference_mode():
        ref = cores["causal"](x).numpy()
    files = {"ort-gqa": export(cores["causal"], dh, 64, work / f"{form}-gqa.onnx", True),
             "ort-decomposed": export(cores["causal"], dh, 64, work / f"{form}-dec.onnx", False),
             "ort-mask": export(cores["mask"], dh, 64, work / f"{form}-mask.onnx", True),
             "ort-mha-full": export(CausalCore(H, block, full=True), dh, 64, work / f"{form}-full.onnx", True)}
    sessions = {k: make_session(p, threads=opts.threads) for k, p in files.items()}
    with torch.inference_mode():
        parity = {k: float(np.abs(f().numpy() - ref).max()) for k, f in eager.items()}
    parity.update({k: float(np.abs(s.run(None, {"x": x.numpy()})[0] - ref).max()) for k, s in sessions.items()})
    parity["ort-mha-full"] = float("nan")                                          # not causal: no parity
    runs: dict[str, list] = {k: [] for k in [*eager, *sessions]}
    for i in range(opts.rounds):
        kw = dict(warmup=2 if i == 0 else 1, repeats=opts.repeats)
        with torch_threads(opts.threads), torch.inference_mode():
            for k, f in eager.items():
                runs[k].append(LatencyResult(measure(f, **kw), {}))
        for k, s in sessions.items():
            runs[k].append(ort_latency(s, {"x": x.numpy()}, **kw))
    rows = []
    for k, results in runs.items():
        s = LatencyResult.combine(results).stats
        rows.append({"form": form, "T": T, "path": k, "cpu_p50_ms": s.cpu_p50_ms if opts.threads == 1 else s.proc_p50_ms,
                     "wall_p50_ms": s.p50_ms, "max_abs_diff": parity[k],
                     "kernels": attention_kernels(files[k]) if k in files else None})
    base = {r["path"]: r["cpu_p50_ms"] for r in rows}
    for r in rows:
        print(f"{form:9s} T={T:5d} {r['path']:15s} cpu {r['cpu_p50_ms']:8.2f} ms  /eager-causal "
              f"{r['cpu_p50_ms'] / base['eager-causal']:.2f}  /ort-decomposed {r['cpu_p50_ms'] / base['ort-decomposed']:.2f}"
              f"  wall {r['wall_p50_ms']:8.2f} ms  max|diff| {r['max_abs_diff']:.1e}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lens", default="512,2048")
    ap.add_argument("--forms", default="full,block-32", help="full and/or block-<w>")
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--head-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5, help="timed calls per path and round")
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="causal_attention_") as tmp:
        for form in opts.forms.split(","):
            for T in (int(t) for t in opts.lens.split(",")):
                bench(form, T, opts, Path(tmp))


if __name__ == "__main__":
    main()
