"""ONNX export, parity checks, ONNX Runtime sessions and latency measurement for nasgraph models.

Typical use (a verified export, then a CPU session and its latency):

    >>> from exporters import export_verified, make_session, ort_latency, batch_seq_axes
    >>> path, report = export_verified(model, (x, mask), "model.onnx", [(x, mask), (x2, mask2)],
    ...                                input_names=["x", "mask"], output_names=["y"],
    ...                                dynamic_axes=batch_seq_axes("x", "mask"))
    >>> sess = make_session(path, "cpu", threads=2)
    >>> ort_latency(sess, {"x": x.numpy(), "mask": mask.numpy()}).stats.p50_ms

A causal language model also exports as prefill/step graphs for generation with carried state:

    >>> (prefill, step), report = export_decode(model, "out/model.onnx", [tokens], max_len=256)
    >>> OrtDecoder("out", threads=2).generate(prompt_ids, 40)

This package never imports nasgraph's training code; it only needs torch, onnx and onnxruntime
(onnxruntime is imported lazily, so exporting works without it).
"""
from exporters.decode_export import DecodeParity, export_decode
from exporters.decode_runtime import OrtDecoder
from exporters.errors import ExportError, ParityError, ProviderError
from exporters.onnx_export import batch_seq_axes, export_onnx
from exporters.parity import ParityCase, ParityReport, check_parity, export_verified
from exporters.runtime import make_session, read_metadata, run, run_with_iobinding, session_settings
from exporters.latency import (LatencyResult, LatencyStats, env_fingerprint, measure, ort_latency,
                               peak_rss_mb, torch_latency)

__all__ = [
    "ExportError", "ParityError", "ProviderError", "batch_seq_axes", "export_onnx", "ParityCase",
    "ParityReport", "check_parity", "export_verified", "make_session", "read_metadata", "run",
    "run_with_iobinding", "session_settings", "LatencyResult", "LatencyStats", "env_fingerprint",
    "measure", "ort_latency", "peak_rss_mb", "torch_latency", "DecodeParity", "export_decode", "OrtDecoder",
]
