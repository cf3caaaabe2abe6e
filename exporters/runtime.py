"""ONNX Runtime sessions that are what they claim to be, runs (plain or IOBinding) and metadata.

onnxruntime-gpu lists CUDAExecutionProvider even without a usable GPU and then silently runs on
the CPU; `make_session` checks `sess.get_providers()` and raises instead of returning such a session.

Example:
    >>> sess = make_session("attn.onnx", "cpu", threads=2, graph_opt="all")
    >>> y, = run(sess, {"x": x.numpy(), "mask": mask.numpy()})
    >>> session_settings(sess)
    {'provider': 'cpu', 'threads': 2, 'graph_opt': 'all', 'spinning': False, ...}
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
import onnx

from exporters.errors import ExportError, ProviderError

if TYPE_CHECKING:
    import onnxruntime as ort

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
GRAPH_OPT_LEVELS = ("disable", "basic", "extended", "all")
SPINNING_KEY = "session.intra_op.allow_spinning"
# ORT optimisers that make these models slower on CPU, turned off in every CPU session made here
# (measured on the CPU only: CUDA sessions keep them).
# SkipLayerNormFusion: Add + LayerNormalization -> com.microsoft.SkipLayerNormalization; at hidden 64
# (1x2048x64, 1 thread, CPU time, 2026-11-30, ORT 1.32) the fused node takes 0.87 ms, Add +
# LayerNormalization 0.16 ms.
DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)
_LEVEL_ENUM = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
               "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}


def _ort():
    try:
        import onnxruntime
    except ImportError as err:
        raise ProviderError("onnxruntime is not installed: pip install 'nasgraph[cpu]' "
                            "(or 'nasgraph[gpu]' for CUDA; never both)") from err
    return onnxruntime


@functools.lru_cache(maxsize=None)
def has_cpu_kernel(op_type: str, domain: str = "com.microsoft", attribute: str | None = None) -> bool:
    """Whether the installed onnxruntime has a CPU kernel for `domain`.`op_type` (and, when `attribute` is
    given, a schema with that attribute); False without onnxruntime."""
    try:
        from onnxruntime.capi import _pybind_state as C
    except ImportError:
        return False
    kernel = any(k.op_name == op_type and k.domain == domain and k.provider == "CPUExecutionProvider"
                 for k in C.get_all_opkernel_def())
    return kernel and (attribute is None or any(s.name == op_type and s.domain == domain and attribute in s.attributes
                                                for s in C.get_all_operator_schema()))


def spinning_default() -> bool:
    """Whether ORT's intra-op threads should spin while waiting for work: not when OpenMP is told to
    wait passively (OMP_WAIT_POLICY=PASSIVE, the CLI's default), i.e. on a shared machine. Measured on
    the 2-core VM at load 23: 2-thread p50 48 ms spinning vs 15 ms not (softmax model, T=512)."""
    return os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE"


def make_session(path: str | os.PathLike, provider: str = "cpu", *, threads: int | None = None,
                 graph_opt: str = "all", device_id: int = 0,
                 optimized_model_path: str | os.PathLike | None = None,
                 spinning: bool | None = None) -> "ort.InferenceSession":
    """An InferenceSession on `provider` ("cpu" or "cuda"), verified to really use it.

    Args:
        path: an .onnx file.
        provider: "cpu" or "cuda" (ProviderError lists the valid names otherwise).
        threads: intra-op threads (None = onnxruntime's default, one per physical core);
            inter-op is 1 and execution sequential, so runs are comparable with torch.set_num_threads.
        graph_opt: "disable", "basic", "extended" or "all" (onnxruntime's optimisation levels).
        device_id: the CUDA device for provider="cuda".
        optimized_model_path: write the graph after onnxruntime's optimisations there (to inspect
            which fusions happened).
        spinning: let idle intra-op threads spin (None: `spinning_default()`, off under
            OMP_WAIT_POLICY=PASSIVE).

    On the CPU the optimisers in DISABLED_OPTIMIZERS are off (measured slower on these models).
    """
    if provider not in PROVIDERS:
        raise ProviderError(f"unknown provider '{provider}'; valid: {', '.join(PROVIDERS)}")
    if graph_opt not in GRAPH_OPT_LEVELS:
        raise ProviderError(f"unknown graph_opt '{graph_opt}'; valid: {', '.join(GRAPH_OPT_LEVELS)}")
    if threads is not None and threads < 1:
        raise ProviderError(f"threads must be >= 1 or None, got {threads}")
    if not Path(path).is_file():
        raise not_a_model(path)
    ort = _ort()
    wanted = PROVIDERS[provider]
    available = ort.get_available_providers()
    if wanted not in available:
        raise ProviderError(f"provider '{provider}' ({wanted}) is not in this onnxruntime build; "
                            f"available: {', '.join(available)}"
                            + ("; install onnxruntime-gpu instead of onnxruntime" if provider == "cuda" else ""))
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or 0
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVEL_ENUM[graph_opt])
    spin = spinning_default() if spinning is None else spinning
    options.add_session_config_entry(SPINNING_KEY, "1" if spin else "0")
    if optimized_model_path is not None:
        options.optimized_model_filepath = str(optimized_model_path)
        options.log_severity_level = 3  # not the "hardware-specific optimisations" notice each time
    chosen: list[Any] = [wanted] if provider == "cpu" else [(wanted, {"device_id": device_id})]
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=chosen,
                                       disabled_optimizers=list(DISABLED_OPTIMIZERS) if provider == "cpu" else [])
    except Exception as err:  # onnxruntime's own exception types (Fail, InvalidGraph, ...)
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise ProviderError(f"onnxruntime cannot load {path} on {wanted}: {type(err).__name__}: {first}") from None
    used = session.get_providers()
    if not used or used[0] != wanted:
        raise ProviderError(f"onnxruntime silently fell back to {', '.join(used) or 'nothing'} instead of "
                            f"{wanted} (is the GPU visible and are the CUDA/cuDNN libraries installed?)")
    return session


def session_settings(session: "ort.InferenceSession") -> dict[str, Any]:
    """The settings a session really runs with: provider, threads, graph_opt (for result rows)."""
    options = session.get_session_options()
    level_names = {getattr(_ort().GraphOptimizationLevel, v): k for k, v in _LEVEL_ENUM.items()}
    provider = session.get_providers()[0]
    return {"provider": {v: k for k, v in PROVIDERS.items()}.get(provider, provider),
            "threads": options.intra_op_num_threads or None,
            "inter_op_threads": options.inter_op_num_threads,
            "graph_opt": level_names.get(options.graph_optimization_level,
                                         str(options.graph_optimization_level)),
            "spinning": _spinning(options)}


def _spinning(options) -> bool:
    try:
        return options.get_session_config_entry(SPINNING_KEY) != "0"
    except RuntimeError:  # not set: onnxruntime's default is to spin
        return True


def run(session: "ort.InferenceSession", feeds: Mapping[str, Any]) -> list[np.ndarray]:
    """Run once: IOBinding on CUDA sessions, a plain run on CPU. Feeds may be numpy or torch."""
    if session.get_providers()[0] == PROVIDERS["cuda"]:
        return run_with_iobinding(session, feeds)
    return session.run(None, to_numpy(feeds))


def run_with_iobinding(session: "ort.InferenceSession", feeds: Mapping[str, Any],
                       device_id: int = 0) -> list[np.ndarray]:
    """Copy inputs to the session's device once, run, copy outputs back (no per-op host copies)."""
    binding = bind(session, feeds, device_id)
    session.run_with_iobinding(binding)
    return binding.copy_outputs_to_cpu()


def bind(session: "ort.InferenceSession", feeds: Mapping[str, Any], device_id: int = 0):
    """An IOBinding with inputs placed on the session's device and outputs left there."""
    ort = _ort()
    device = "cuda" if session.get_providers()[0] == PROVIDERS["cuda"] else "cpu"
    binding = session.io_binding()
    for name, value in to_numpy(feeds).items():
        binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(value, device, device_id))
    for out in session.get_outputs():
        binding.bind_output(out.name, device, device_id)
    return binding


def to_numpy(feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Feeds as contiguous numpy arrays (torch tensors are detached and moved to the CPU)."""
    out = {}
    for name, value in feeds.items():
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        out[name] = np.ascontiguousarray(value)
    return out


def not_a_model(path: str | os.PathLike) -> ExportError:
    """The error for a path that is not an .onnx file: missing, a train run folder, another folder, a pipe."""
    path = Path(path)
    if not path.exists():
        return ExportError(f"{path}: no such file (expected an .onnx written by `nasgraph export`)")
    if (path / "spec.yaml").is_file() and (path / "checkpoints").is_dir():
        return ExportError(f"{path} is a train run folder, not an .onnx: export it first (`nasgraph export {path} "
                           f"-o model.onnx`)")
    if not path.is_dir():                                  # a named pipe, a device, a socket
        return ExportError(f"{path} is not a regular file (a pipe, device or socket), not an .onnx file written by "
                           f"`nasgraph export`")
    return ExportError(f"{path} is a folder, not an .onnx file written by `nasgraph export`")


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata_props of an .onnx file as a dict (weights are not loaded)."""
    if not Path(path).is_file():
        raise not_a_model(path)
    if Path(path).stat().st_size == 0:
        raise ExportError(f"{path}: empty file (0 bytes), not an ONNX model")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # noqa: BLE001 - protobuf DecodeError, RuntimeError, ...: all mean a bad file
        first = (str(err).strip().splitlines() or [""])[0][:120]
        if Path(path).suffix.lower() in (".yaml", ".yml"):
            raise ExportError(f"{path} is a spec, not an ONNX model: train it (`nasgraph train {path} --out RUN`), "
                              f"then `nasgraph export RUN -o model.onnx`") from None
        raise ExportError(f"{path}: not a readable ONNX model, truncated or another kind of file "
                          f"({type(err).__name__}{': ' + first if first else ''})") from None
    if not model.graph.node and not model.graph.output:
        raise ExportError(f"{path}: not an ONNX model (no graph in it)")
    return {p.key: p.value for p in model.metadata_props}


def op_counts(path: str | os.PathLike) -> dict[str, int]:
    """How many nodes of each op type a model has (e.g. of an `optimized_model_path` file)."""
    model = onnx.load(str(path), load_external_data=False)
    counts: dict[str, int] = {}
    for node in model.graph.node:
        key = f"{node.domain}.{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
