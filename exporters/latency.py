"""Latency, peak memory and environment fingerprints shared by benchmarks and `nasgraph bench`.

Timing follows ONNX Runtime's transformers benchmark: warm-up calls, then single timed calls
(time.perf_counter, GC off while timing) and p50/p90/p99 of the per-call times. Each call's CPU time
on the calling thread (time.thread_time) is recorded too: with one thread (torch.set_num_threads(1),
ORT intra_op_num_threads=1 both compute on the caller) it is the work of the call without the time
the OS gave to other processes, the steadier figure on a shared machine; with more threads it
misses the helper threads' work, which the process's CPU time (time.process_time) counts (with
passive waits, OMP_WAIT_POLICY=PASSIVE and ORT without spinning, idle threads add nothing). Every result records the settings it ran with (threads, provider,
graph optimisation level, shapes, versions).

Example:
    >>> r = torch_latency(attn, (x, mask), threads=2)
    >>> s = ort_latency(make_session("attn.onnx", threads=2), {"x": x.numpy(), "mask": mask.numpy()})
    >>> r.stats.p50_ms, s.stats.p50_ms, s.settings["graph_opt"]
    (1.21, 0.98, 'all')
"""
from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import os
import platform
import resource
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from exporters.runtime import PROVIDERS, bind, session_settings, to_numpy


@dataclass(frozen=True)
class LatencyStats:
    """Per-call latency statistics in milliseconds; throughput in items (batch rows) per second."""

    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    std_ms: float
    repeats: int
    warmup: int
    throughput: float
    items: int = 1
    cpu_p50_ms: float | None = None  # the calling thread's CPU time per call (1 thread: the call's work)
    cpu_min_ms: float | None = None
    proc_p50_ms: float | None = None  # the process's CPU time per call: all threads' work (idle waits passive)
    proc_min_ms: float | None = None
    samples_ms: tuple[float, ...] = field(default=(), repr=False)  # the raw per-call times
    cpu_samples_ms: tuple[float, ...] = field(default=(), repr=False)
    proc_samples_ms: tuple[float, ...] = field(default=(), repr=False)

    @classmethod
    def from_seconds(cls, times: Sequence[float], warmup: int, items: int = 1,
                     cpu_times: Sequence[float] = (), proc_times: Sequence[float] = ()) -> "LatencyStats":
        ms = np.asarray(times, dtype=np.float64) * 1e3
        cpu = np.asarray(cpu_times, dtype=np.float64) * 1e3
        proc = np.asarray(proc_times, dtype=np.float64) * 1e3
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        return cls(p50_ms=float(p50), p90_ms=float(p90), p99_ms=float(p99), mean_ms=float(ms.mean()),
                   min_ms=float(ms.min()), std_ms=float(ms.std()), repeats=len(ms), warmup=warmup,
                   throughput=float(items * 1e3 / ms.mean()), items=items,
                   cpu_p50_ms=float(np.median(cpu)) if cpu.size else None,
                   cpu_min_ms=float(cpu.min()) if cpu.size else None,
                   proc_p50_ms=float(np.median(proc)) if proc.size else None,
                   proc_min_ms=float(proc.min()) if proc.size else None,
                   samples_ms=tuple(float(v) for v in ms), cpu_samples_ms=tuple(float(v) for v in cpu),
                   proc_samples_ms=tuple(float(v) for v in proc))


@dataclass(frozen=True)
class LatencyResult:
    """Statistics plus the settings that produced them (backend, threads, provider, shapes...)."""

    stats: LatencyStats
    settings: dict[str, Any]

    def row(self) -> dict[str, Any]:
        """One flat, JSON-ready dict (numbers stay numbers; raw samples left out)."""
        stats = asdict(self.stats)
        del stats["samples_ms"], stats["cpu_samples_ms"], stats["proc_samples_ms"]
        return {**self.settings, **stats}

    @classmethod
    def combine(cls, results: Sequence["LatencyResult"]) -> "LatencyResult":
        """Pool the samples of several runs of the same thing (e.g. rounds interleaved with another
        backend, so both see the same machine load); settings are the first run's."""
        if not results:
            raise ValueError("combine() needs at least one result")
        samples = [v / 1e3 for r in results for v in r.stats.samples_ms]
        cpu = [v / 1e3 for r in results for v in r.stats.cpu_samples_ms]
        proc = [v / 1e3 for r in results for v in r.stats.proc_samples_ms]
        stats = LatencyStats.from_seconds(samples, sum(r.stats.warmup for r in results),
                                          results[0].stats.items, cpu, proc)
        return cls(stats, dict(results[0].settings))


def measure(fn: Callable[[], Any], *, warmup: int = 3, repeats: int = 20, items: int = 1,
            budget_s: float | None = None) -> LatencyStats:
    """Call `fn` `warmup` times, then time `repeats` single calls.

    budget_s: cap the timed phase at roughly this many seconds (at least 3 calls), judged from the
    slowest warm-up call; the stats record how many calls were actually timed.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    slowest = 0.0
    for _ in range(warmup):
        slowest = max(slowest, _timed_call(fn)[0])
    if budget_s is not None and slowest > 0:
        repeats = max(3, min(repeats, int(budget_s / slowest)))
    calls, start = [], time.perf_counter()
    for _ in range(repeats):            # the budget also holds without warm-up calls to judge from
        calls.append(_timed_call(fn))
        if budget_s is not None and len(calls) >= 3 and time.perf_counter() - start > budget_s:
            break
    return LatencyStats.from_seconds([w for w, _, _ in calls], warmup, items, [c for _, c, _ in calls],
                                     [p for _, _, p in calls])


def _timed_call(fn: Callable[[], Any]) -> tuple[float, float, float]:
    """(wall, calling thread's CPU, process CPU) seconds of one call, garbage collection off (as timeit)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        wall, cpu, proc = time.perf_counter(), time.thread_time(), time.process_time()
        fn()
        return time.perf_counter() - wall, time.thread_time() - cpu, time.process_time() - proc
    finally:
        if enabled:
            gc.enable()


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """Temporarily torch.set_num_threads(threads) (None leaves torch's setting alone)."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def torch_latency(module: torch.nn.Module, inputs: Sequence[torch.Tensor], *, threads: int | None = None,
                  warmup: int = 3, repeats: int = 20, budget_s: float | None = None) -> LatencyResult:
    """Eager PyTorch latency of module(*inputs) in eval mode under no_grad, on `threads` threads."""
    module.eval()
    with torch_threads(threads) as used, torch.no_grad():
        stats = measure(lambda: module(*inputs), warmup=warmup, repeats=repeats,
                        items=_batch(inputs), budget_s=budget_s)
    return LatencyResult(stats, {"backend": "torch-eager", "provider": "cpu", "threads": used,
                                 "graph_opt": "eager", "shapes": _shapes(inputs),
                                 "torch": torch.__version__})


def ort_latency(session, feeds: Mapping[str, Any], *, warmup: int = 3, repeats: int = 20,
                budget_s: float | None = None) -> LatencyResult:
    """ONNX Runtime latency of one session: a plain run on CPU, a pre-bound IOBinding on CUDA."""
    import onnxruntime

    arrays = to_numpy(feeds)
    if session.get_providers()[0] == PROVIDERS["cuda"]:
        binding = bind(session, arrays)  # inputs copied to the GPU once, outside the timed calls
        fn = lambda: session.run_with_iobinding(binding)  # noqa: E731
    else:
        fn = lambda: session.run(None, arrays)  # noqa: E731
    stats = measure(fn, warmup=warmup, repeats=repeats, items=_batch(list(arrays.values())),
                    budget_s=budget_s)
    return LatencyResult(stats, {"backend": "onnxruntime", **session_settings(session),
                                 "shapes": _shapes(arrays.values()),
                                 "onnxruntime": onnxruntime.__version__})


# -- peak memory ---------------------------------------------------------------------------------
# tracemalloc only sees Python's allocator, not torch's (c10) or onnxruntime's buffers, so it reports
# ~0 for a forward pass. Resident memory is the right measure. ru_maxrss is a lifetime high-water
# mark that cannot be re-armed, so it needs a fresh process per measurement (a ~2 s torch import
# each). Linux >= 4.0 re-arms the high-water mark (VmHWM) on `echo 5 > /proc/self/clear_refs`, which
# measures in-process with no extra dependency; psutil was not added: it reads the current RSS and
# would have to poll from a thread, missing short peaks.
@dataclass(frozen=True)
class PeakMemory:
    baseline_mb: float   # resident memory just before the call
    peak_mb: float       # highest resident memory during the call
    method: str          # "vmhwm-reset" (exact) or "ru_maxrss" (lower bound: only growth past old peaks)

    @property
    def delta_mb(self) -> float:
        return max(0.0, self.peak_mb - self.baseline_mb)


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return _status_kb("VmHWM") is not None
    except OSError:
        return False


def peak_rss_mb(fn: Callable[[], Any]) -> PeakMemory:
    """Run `fn` once and report the process's resident memory before and at its peak (MB)."""
    if _reset_hwm():
        baseline = _status_kb("VmRSS") or 0
        fn()
        return PeakMemory(baseline / 1024, (_status_kb("VmHWM") or 0) / 1024, "vmhwm-reset")
    scale = 1024 if platform.system() == "Darwin" else 1  # bytes on macOS, KiB on Linux
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale
    fn()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale
    return PeakMemory(baseline / 1024, peak / 1024, "ru_maxrss")


# -- environment fingerprint ---------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except ImportError:
        return None


def env_fingerprint(provider: str = "cpu") -> dict[str, Any]:
    """Hardware and software that latency depends on, plus `hash`: 12 hex chars, stable across runs.

    The hash keys cached latency tables per machine; thread counts are run settings and live in the
    result rows, not here.
    """
    env: dict[str, Any] = {
        "cpu": _cpu_model(), "machine": platform.machine(), "system": platform.system(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(), "torch": torch.__version__, "onnx": _version("onnx"),
        "onnxruntime": _version("onnxruntime"), "numpy": np.__version__, "provider": provider,
    }
    if provider == "cuda" and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    env["hash"] = hashlib.sha256(json.dumps(env, sort_keys=True).encode()).hexdigest()[:12]
    return env


def _batch(inputs) -> int:
    first = next(iter(inputs), None)
    return int(first.shape[0]) if first is not None and len(first.shape) else 1


def _shapes(inputs) -> list[list[int]]:
    return [list(t.shape) for t in inputs]
