"""Plug-ins without forking: attention types, tasks and strategies from the user's own modules, through
a spec's `plugins:` key or an entry point group; `nasgraph check-attention` runs the contract on them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nasgraph import attention, tasks
from nasgraph.attention import registry as attention_registry
from nasgraph.cli import main
from nasgraph.errors import SpecError
from nasgraph.search.strategies import STRATEGIES
from nasgraph.spec import load_spec
from nasgraph.tasks import registry as task_registry

ROOT = Path(__file__).resolve().parents[1]

MEAN_ATTENTION = '''
"""A plug-in attention: each position averages the values it may see (a running mean when causal)."""
import torch
from torch import nn

from nasgraph.attention import Attention, AttentionConfig, Capabilities, register


class MeanConfig(AttentionConfig):
    scale: float = 1.0


@register("{name}")
class MeanAttention(Attention):
    Config = MeanConfig
    caps = Capabilities(causal=True, linear=True)

    def __init__(self, d_model, n_heads, **kw):
        super().__init__(d_model, n_heads, **kw)
        self.v_proj = nn.Linear(d_model, self.inner)

    def heads(self, x, mask=None):
        B, T, _ = x.shape
        v = self.v_proj(x).view(B, T, self.n_heads, self.head_dim)      # (B, T, H, dh)
        w = torch.ones(B, T, 1, 1) if {ignore_mask} or mask is None else mask[:, :, None, None].to(x.dtype)
        if self.causal:
            num, den = (v * w).cumsum(1), w.cumsum(1)
        else:
            num, den = (v * w).sum(1, keepdim=True).expand_as(v), w.sum(1, keepdim=True)
        return self.config.scale * num / den.clamp(min=1.0)              # (B, T, H, dh)
'''

TASK_AND_STRATEGY = '''
from nasgraph.search.strategies.darts import Darts
from nasgraph.search.strategies.registry import register as register_strategy
from nasgraph.tasks import register
from nasgraph.tasks.synthetic import TinyConfig, TinyTask


class ShortTinyConfig(TinyConfig):
    kind: str = "user_tiny"


@register("user_tiny")
class ShortTiny(TinyTask):
    Config = ShortTinyConfig


@register_strategy("user_darts")
class UserDarts(Darts):
    """DARTS under another name: enough to show a strategy registered from outside the package."""
'''


@pytest.fixture(autouse=True)
def restore_registries():
    """Plug-ins registered by a test are forgotten afterwards (other tests enumerate the registries)."""
    saved = [(r, dict(r._entries)) for r in (attention_registry._REGISTRY, task_registry._REGISTRY, STRATEGIES)]
    modules = set(sys.modules)
    yield
    for registry, entries in saved:
        registry._entries.clear()
        registry._entries.update(entries)
    for name in set(sys.modules) - modules:
        if name.startswith(("nasgraph_plugin_", "user_plugin_")):
            del sys.modules[name]


def write_attention(folder: Path, name: str, ignore_mask: bool = False, file: str | None = None) -> Path:
    path = folder / (file or f"{name}.py")
    path.write_text(MEAN_ATTENTION.format(name=name, ignore_mask=ignore_mask))
    return path


def test_check_attention_passes_a_plugin_that_keeps_the_contract(tmp_path, capsys):
    plugin = write_attention(tmp_path, "user_mean")
    assert main(["check-attention", "user_mean", "--plugin", str(plugin), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    statuses = {(r["check"], r["form"]): r["status"] for r in report["results"]}
    assert report["ok"] and statuses[("onnx", "causal")] == "pass" and statuses[("padding", "full")] == "pass"
    assert statuses[("bounded", "full")] == "skip"  # caps.bounded=False: skipped by the flag, not by name
    assert "user_mean" in attention.names()


def test_check_attention_fails_a_plugin_that_leaks_padding(tmp_path, capsys):
    plugin = write_attention(tmp_path, "user_leaky", ignore_mask=True)
    assert main(["check-attention", "user_leaky", "--plugin", str(plugin), "--no-onnx"]) == 1
    out = capsys.readouterr().out
    failed = [line for line in out.splitlines() if " FAIL " in line]
    assert {line.split()[0] for line in failed} == {"padding"}, out
    assert "padded tokens changed real outputs" in out and "BREAKS the contract" in out


def test_check_attention_reports_a_broken_plugin_in_one_line(tmp_path, capsys):
    (tmp_path / "broken.py").write_text("import no_such_module_anywhere\n")
    assert main(["check-attention", "x", "--plugin", str(tmp_path / "broken.py")]) == 2
    err = capsys.readouterr().err
    assert "cannot import plug-in" in err and "no_such_module_anywhere" in err and "Traceback" not in err


def test_spec_plugins_register_attention_task_and_strategy(tmp_path, monkeypatch, write_spec):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "user_plugin_tasks.py").write_text(TASK_AND_STRATEGY)
    write_attention(tmp_path, "user_mean2", file="local_mean.py")
    spec = write_spec("""
        name: plugged
        plugins: [user_plugin_tasks, local_mean.py]
        task: {kind: user_tiny, max_len: 12, n_train: 128, n_val: 32, n_test: 32}
        model:
          d_model: 16
          n_heads: 2
          n_layers: 1
          attention: {candidates: [softmax, {user_mean2: {scale: 0.5}}]}
        search: {strategy: user_darts, seeds: [0], steps: 4}
        train: {steps: 4, batch_size: 16, eval_every: 2, checkpoint_every: 2}
        """)
    doc = load_spec(spec)
    assert doc.spec.search.strategy == "user_darts" and "user_tiny" in tasks.kinds()
    assert Path(doc.raw["plugins"][1]).is_absolute()      # the run folder's snapshot still finds the file
    run = tmp_path / "run"
    assert main(["search", str(spec), "--out", str(run), "--no-progress"]) == 0
    assert json.loads((run / "search.json").read_text())["strategy"] == "user_darts"
    assert main(["derive", str(run), "-o", str(tmp_path / "derived.yaml")]) == 0
    load_spec(tmp_path / "derived.yaml")                  # loading twice registers nothing twice


@pytest.mark.parametrize("plugins,message", [
    ("[user_plugin_missing]", "No module named 'user_plugin_missing'"),
    ("[missing.py]", "plug-in file not found"),
    ("user_plugin_x", "expected a list of modules"),
])
def test_a_plugin_that_cannot_be_imported_is_a_located_spec_error(write_spec, plugins, message):
    spec = write_spec(f"""
        name: plugged
        task: {{kind: tiny, max_len: 12}}
        plugins: {plugins}
        model: {{d_model: 16, n_heads: 2, n_layers: 1, attention: softmax}}
        """)
    with pytest.raises(SpecError) as err:
        load_spec(spec)
    assert err.value.line == 4 and err.value.path.startswith("plugins") and message in str(err.value)


def test_unknown_strategy_is_a_located_spec_error(tiny_spec):
    with pytest.raises(SpecError, match="unknown search strategy 'dartz'.*did you mean 'darts'") as err:
        load_spec(tiny_spec(strategy="dartz"))
    assert err.value.path == "search.strategy" and err.value.line is not None


def test_entry_points_register_modules_and_classes(tmp_path):
    """An installed distribution's entry points (here a .dist-info on sys.path) are loaded lazily."""
    site = tmp_path / "site"
    dist = site / "user_plugins-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: user-plugins\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent("""
        [nasgraph.attention]
        by_module = user_plugin_ep
        ep_class = user_plugin_cls:MeanAttention
        broken = user_plugin_missing
        """))
    write_attention(site, "ep_module", file="user_plugin_ep.py")
    (site / "user_plugin_cls.py").write_text(MEAN_ATTENTION.replace('@register("{name}")\n', "").format(
        ignore_mask=False))
    code = ("import warnings; warnings.simplefilter('ignore')\n"
            "from nasgraph import attention\n"
            "print(' '.join(attention.names()))\n"
            "print(attention.build('ep_class', 16, 2)(__import__('torch').randn(1, 5, 16)).shape)\n"
            "try:\n    attention.get('broken')\nexcept Exception as err:\n    print(err)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(site)])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    names, shape, missing = out.stdout.splitlines()
    assert {"ep_module", "ep_class", "softmax"} <= set(names.split())
    assert shape == "torch.Size([1, 5, 16])"
    assert "plug-ins that failed to load: broken = user_plugin_missing (ModuleNotFoundError" in missing
