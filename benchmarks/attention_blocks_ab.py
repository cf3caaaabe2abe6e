"""In-process A/B of attention variants: eager and ONNX Runtime CPU time per call (1 thread), the
variants and lengths alternated call by call (order reversed every other repeat), so a busy machine
slows all alike. Prints median (min) ms per variant, backend and T, and the last/first T ratio.

    OMP_WAIT_POLICY=PASSIVE nice -n 10 python benchmarks/attention_blocks_ab.py retention,retention@block=0 1024,8192 10
"""
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch  # noqa: E402
from attention_scaling_child import build_module  # noqa: E402
from exporters.onnx_export import export_onnx  # noqa: E402
from exporters.runtime import make_session  # noqa: E402
torch.set_num_threads(1)
names = sys.argv[1].split(","); Ts = [int(t) for t in sys.argv[2].split(",")]; reps = int(sys.argv[3])
work = tempfile.mkdtemp()
mods, sess = {}, {}
for n in names:
    torch.manual_seed(0); mods[n] = build_module(n, max(Ts), True)
    p = os.path.join(work, n.replace("@", "_").replace("=", "") + ".onnx")
    export_onnx(mods[n], (torch.randn(1, Ts[0], 256),), p, input_names=["x"], output_names=["y"], dynamic_axes={"x": {1: "seq"}}, fallback=False)
    sess[n] = make_session(p, threads=1)
res = {(n, T, b): [] for n in names for T in Ts for b in ("eager", "ort")}
xs = {T: torch.randn(1, T, 256) for T in Ts}
def timed(f):
    t0 = time.thread_time(); f(); return time.thread_time() - t0
with torch.no_grad():
    for n in names:
        for T in Ts: mods[n](xs[T]); sess[n].run(None, {"x": xs[T].numpy()})
    for r in range(reps):
        for T in (Ts if r % 2 else Ts[::-1]):
            for n in (names if r % 2 else names[::-1]):
                res[(n, T, "eager")].append(timed(lambda: mods[n](xs[T])))
                res[(n, T, "ort")].append(timed(lambda: sess[n].run(None, {"x": xs[T].numpy()})))
for n in names:
    for b in ("eager", "ort"):
        med = {T: statistics.median(res[(n, T, b)]) * 1e3 for T in Ts}
        mn = {T: min(res[(n, T, b)]) * 1e3 for T in Ts}
        print(f"{n:28s} {b:5s}", " ".join(f"{T}: {med[T]:6.1f} ({mn[T]:6.1f})" for T in Ts), f"ratio {med[Ts[-1]]/med[Ts[0]]:.2f} ({mn[Ts[-1]]/mn[Ts[0]]:.2f})", flush=True)
