"""exporters: provider assertion, metadata round trip, no-overwrite, parity failures, latency helpers."""
from __future__ import annotations

import os
import time

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from exporters import (ExportError, LatencyResult, ParityError, ProviderError, batch_seq_axes, check_parity,
                       env_fingerprint, export_onnx, export_verified, make_session, measure,
                       ort_latency, peak_rss_mb, read_metadata, run, run_with_iobinding,
                       session_settings, torch_latency)
from exporters.onnx_export import LegacyExporterWarning
from exporters.runtime import spinning_default


class Tiny(torch.nn.Module):
    """x: (B, T, 8) -> (B, T, 4)."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(8, 4)

    def forward(self, x):
        return torch.tanh(self.proj(x))


class LiesWhenExported(Tiny):
    """Traces a different graph than it runs eagerly: a real torch/ONNX mismatch of exactly 1."""

    def forward(self, x):
        y = super().forward(x)
        return y + 1.0 if torch.compiler.is_exporting() else y


class DataDependent(torch.nn.Module):
    """Python control flow on a tensor value: torch.export refuses it, the legacy tracer bakes a branch."""

    def forward(self, x):
        if x.sum() > 0:
            return x * 2
        return -x


def export_tiny(path, module=None, **kwargs):
    kwargs.setdefault("dynamic_axes", batch_seq_axes("x"))
    return export_onnx(module or Tiny(), (torch.randn(2, 5, 8),), path, input_names=["x"],
                       output_names=["y"], **kwargs)


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    torch.manual_seed(0)
    module = Tiny().eval()
    path = export_tiny(tmp_path_factory.mktemp("tiny") / "tiny.onnx", module,
                       metadata={"spec": "d=8", "note": "ünïcode ✓"})
    return module, path


# -- export ---------------------------------------------------------------------------------------
def test_metadata_round_trip(tiny_onnx):
    _, path = tiny_onnx
    meta = read_metadata(path)
    assert meta["spec"] == "d=8" and meta["note"] == "ünïcode ✓"
    assert meta["nasgraph.exporter"] == "dynamo" and meta["nasgraph.opset"] == "18"
    assert meta["nasgraph.input_names"] == '["x"]' and meta["nasgraph.output_names"] == '["y"]'


def test_single_self_contained_file(tiny_onnx):
    _, path = tiny_onnx
    assert sorted(os.listdir(path.parent)) == ["tiny.onnx"]  # no .onnx.data, no staging leftovers
    model = onnx.load(str(path))
    assert all(t.data_location == onnx.TensorProto.DEFAULT for t in model.graph.initializer)
    dims = [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "seq", ""]


def test_does_not_overwrite_unless_asked(tmp_path):
    target = tmp_path / "m.onnx"
    target.write_text("keep me")
    with pytest.raises(ExportError, match="already exists"):
        export_tiny(target)
    assert target.read_text() == "keep me"
    export_tiny(target, overwrite=True)
    onnx.checker.check_model(str(target))
    assert sorted(os.listdir(tmp_path)) == ["m.onnx"]


def test_large_model_path_keeps_weights_beside_and_cleans_up(tmp_path, monkeypatch):
    """Above the self-contained limit the weights go to <name>.onnx.data and move with the model."""
    import exporters.onnx_export as onnx_export

    wide = torch.nn.Linear(64, 64)  # 16 KB of weights: above onnx's 1 KB external-data threshold
    args, target = (torch.randn(2, 5, 64),), tmp_path / "big.onnx"
    monkeypatch.setattr(onnx_export, "SELF_CONTAINED_LIMIT", 0)
    export_onnx(wide, args, target, dynamic_axes=batch_seq_axes("input"))
    assert sorted(os.listdir(tmp_path)) == ["big.onnx", "big.onnx.data"]
    sess = make_session(target)
    np.testing.assert_allclose(run(sess, {"input": args[0]})[0], wide(args[0]).detach().numpy(), atol=1e-5)
    monkeypatch.setattr(onnx_export, "SELF_CONTAINED_LIMIT", 1 << 40)
    export_onnx(wide, args, target, overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["big.onnx"]  # the stale .data went with the old model


@pytest.mark.parametrize("metadata,match", [({"nasgraph.exporter": "me"}, "reserved"),
                                            ({"epochs": 3}, "str to str")])
def test_bad_metadata_is_refused_before_exporting(tmp_path, metadata, match):
    with pytest.raises(ExportError, match=match):
        export_tiny(tmp_path / "m.onnx", metadata=metadata)
    assert not os.listdir(tmp_path)


def test_bad_dynamic_axes_name_the_inputs(tmp_path):
    with pytest.raises(ExportError, match="'z'.*inputs: x"):
        export_tiny(tmp_path / "m.onnx", dynamic_axes={"z": {0: "batch"}})
    with pytest.raises(ExportError, match="opset 17"):
        export_tiny(tmp_path / "m.onnx", opset=17)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_legacy_fallback_warns_and_is_recorded(tmp_path):
    args = (torch.randn(2, 5, 3).abs(),)
    with pytest.raises(ExportError, match="dynamo export failed"):
        export_onnx(DataDependent(), args, tmp_path / "strict.onnx", fallback=False)
    with pytest.warns(LegacyExporterWarning, match="falling back"):
        path = export_onnx(DataDependent(), args, tmp_path / "legacy.onnx")
    meta = read_metadata(path)
    assert meta["nasgraph.exporter"] == "torchscript-legacy"
    assert "GuardOnDataDependentSymNode" in meta["nasgraph.dynamo_error"]
    assert sorted(os.listdir(tmp_path)) == ["legacy.onnx"]


# -- parity ---------------------------------------------------------------------------------------
def test_parity_reports_each_input(tiny_onnx):
    module, path = tiny_onnx
    inputs = [(torch.randn(3, 7, 8),), (torch.randn(1, 40, 8),)]
    report = check_parity(module, path, inputs)
    assert report.ok and [c.shapes for c in report.cases] == [((3, 7, 8),), ((1, 40, 8),)]
    assert report.max_abs_diff < 1e-5
    other = Tiny()  # different weights: a real mismatch
    bad = check_parity(other, path, inputs)
    assert not bad.ok and bad.max_abs_diff > 1e-3 and "MISMATCH" in bad.summary()


def test_parity_failure_leaves_no_file(tmp_path):
    inputs = [(torch.randn(3, 7, 8),), (torch.randn(1, 11, 8),)]
    with pytest.raises(ParityError, match=r"MISMATCH.*\[3x7x8\] max_abs_diff=1;") as err:
        export_verified(LiesWhenExported(), (torch.randn(2, 5, 8),), tmp_path / "m.onnx", inputs,
                        input_names=["x"], dynamic_axes=batch_seq_axes("x"))
    assert "1x11x8" in str(err.value)
    assert not os.listdir(tmp_path)


def test_export_verified_lands_with_parity_metadata(tmp_path):
    inputs = [(torch.randn(3, 7, 8),), (torch.randn(1, 11, 8),)]
    path, report = export_verified(Tiny(), (torch.randn(2, 5, 8),), tmp_path / "m.onnx", inputs,
                                   input_names=["x"], dynamic_axes=batch_seq_axes("x"))
    assert report.ok and sorted(os.listdir(tmp_path)) == ["m.onnx"]
    meta = read_metadata(path)
    assert float(meta["nasgraph.parity_max_abs_diff"]) == pytest.approx(report.max_abs_diff, rel=1e-2)


# -- sessions -------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:Specified provider")
def test_silent_cpu_fallback_is_refused(tiny_onnx, monkeypatch):
    """onnxruntime-gpu lists CUDA, then quietly runs on the CPU: simulate both halves."""
    _, path = tiny_onnx
    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort.InferenceSession, "get_providers", lambda self: ["CPUExecutionProvider"])
    with pytest.raises(ProviderError, match="fell back to CPUExecutionProvider instead of CUDA"):
        make_session(path, "cuda")


def test_cuda_missing_from_build_says_what_to_install(tiny_onnx, monkeypatch):
    _, path = tiny_onnx
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(ProviderError, match="not in this onnxruntime build.*onnxruntime-gpu"):
        make_session(path, "cuda")


@pytest.mark.parametrize("kwargs,match", [({"provider": "CUDA"}, "unknown provider 'CUDA'; valid: cpu, cuda"),
                                          ({"graph_opt": "max"}, "unknown graph_opt 'max'; valid: disable"),
                                          ({"threads": 0}, "threads must be >= 1")])
def test_bad_session_options_name_the_valid_ones(tiny_onnx, kwargs, match):
    with pytest.raises(ProviderError, match=match):
        make_session(tiny_onnx[1], **kwargs)


def test_cpu_session_settings_and_runs(tiny_onnx):
    module, path = tiny_onnx
    sess = make_session(path, "cpu", threads=1, graph_opt="basic")
    assert session_settings(sess) == {"provider": "cpu", "threads": 1, "inter_op_threads": 1,
                                      "graph_opt": "basic", "spinning": spinning_default()}
    x = torch.randn(2, 9, 8)
    with torch.no_grad():
        expected = module(x).numpy()
    plain, = run(sess, {"x": x})
    bound, = run_with_iobinding(sess, {"x": x.numpy()})  # the CUDA path's binding, on CPU memory
    np.testing.assert_allclose(plain, expected, atol=1e-6)
    np.testing.assert_array_equal(plain, bound)


# -- latency --------------------------------------------------------------------------------------
def test_measure_counts_calls_and_orders_percentiles():
    calls = []
    stats = measure(lambda: calls.append(1), warmup=2, repeats=7, items=4)
    assert len(calls) == 9 and stats.repeats == 7 and stats.warmup == 2
    assert stats.min_ms <= stats.p50_ms <= stats.p90_ms <= stats.p99_ms
    assert stats.throughput == pytest.approx(4e3 / stats.mean_ms)


def test_measure_records_the_calling_threads_cpu_time():
    """CPU time counts work, not waiting: a sleep takes wall time and (almost) no CPU time."""
    stats = measure(lambda: time.sleep(0.02), warmup=0, repeats=3)
    assert stats.cpu_p50_ms is not None and stats.cpu_min_ms <= stats.cpu_p50_ms
    assert stats.cpu_p50_ms < stats.min_ms    # the sleeping thread used less CPU than the wall clock saw
    busy = measure(lambda: sum(range(200_000)), warmup=1, repeats=3)
    assert busy.cpu_p50_ms > 0 and "cpu_samples_ms" not in LatencyResult(busy, {}).row()


def test_measure_records_the_process_cpu_time_of_all_threads():
    """The process's CPU time counts work done on other threads, which the calling thread's misses."""
    import threading

    def on_a_helper_thread():
        helper = threading.Thread(target=lambda: sum(range(300_000)))
        helper.start()
        helper.join()

    stats = measure(on_a_helper_thread, warmup=0, repeats=3)
    assert stats.proc_p50_ms is not None and stats.proc_min_ms <= stats.proc_p50_ms
    assert stats.proc_p50_ms > stats.cpu_p50_ms      # the helper's work is in the process's time only
    combined = LatencyResult.combine([LatencyResult(stats, {}), LatencyResult(stats, {})]).stats
    assert len(combined.proc_samples_ms) == 6 and "proc_samples_ms" not in LatencyResult(stats, {}).row()


def test_sessions_spin_only_when_openmp_is_not_passive(tiny_onnx, monkeypatch):
    path = tiny_onnx[1]
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    assert session_settings(make_session(path))["spinning"] is False
    assert session_settings(make_session(path, spinning=True))["spinning"] is True
    monkeypatch.delenv("OMP_WAIT_POLICY")
    assert session_settings(make_session(path))["spinning"] is True


def test_measure_budget_caps_repeats():
    stats = measure(lambda: time.sleep(0.01), warmup=1, repeats=50, budget_s=0.05)
    assert 3 <= stats.repeats <= 5


def test_latency_records_threads_and_restores_them(tiny_onnx):
    module, path = tiny_onnx
    before = torch.get_num_threads()
    x = torch.randn(2, 9, 8)
    eager = torch_latency(module, (x,), threads=1, warmup=1, repeats=3)
    assert torch.get_num_threads() == before
    assert eager.settings["threads"] == 1 and eager.settings["shapes"] == [[2, 9, 8]]
    onnx_row = ort_latency(make_session(path, threads=1, graph_opt="extended"), {"x": x},
                           warmup=1, repeats=3).row()
    assert onnx_row["threads"] == 1 and onnx_row["graph_opt"] == "extended"
    assert onnx_row["repeats"] == 3 and onnx_row["backend"] == "onnxruntime"


def test_peak_rss_sees_a_large_allocation():
    peak = peak_rss_mb(lambda: torch.ones(50_000_000).add_(1))  # 200 MB, touched
    assert peak.delta_mb > 150, peak


def test_fingerprint_is_stable_and_provider_sensitive():
    first, again = env_fingerprint("cpu"), env_fingerprint("cpu")
    assert first == again and len(first["hash"]) == 12
    assert env_fingerprint("cuda")["hash"] != first["hash"]
    assert first["torch"] == torch.__version__ and first["onnxruntime"] == ort.__version__
