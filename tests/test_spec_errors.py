"""A corpus of malformed specs (spec_error_cases.py): each error names the exact place (file:line:col), key path
and problem; YAML hazards (python tags, recursive aliases, bad bytes, a folder) are errors too."""
from __future__ import annotations

from pathlib import Path

import pytest

from nasgraph import attention
from nasgraph.errors import SpecError
from nasgraph.spec import AttentionSpec, check_attention, format_path, load_spec
from spec_error_cases import CASES, GOOD, Case

BOUNDED = next((n for n in attention.names() if attention.get(n).caps.bounded), None)


def _raise(c: Case, tmp_path: Path) -> SpecError:
    file = tmp_path / "spec.yaml"
    if c.text is not None:
        file.write_text(c.text)
    with pytest.raises(SpecError) as info:
        doc = load_spec(file, c.overrides)
        if c.compile:
            from nasgraph.graph import compile_spec
            compile_spec(doc)
        else:
            pytest.fail(f"loaded without error: {doc.spec!r:.200}")
    return info.value


@pytest.mark.parametrize("c", CASES)
def test_malformed_spec_is_located(c: Case, tmp_path: Path):
    err = _raise(c, tmp_path)
    file = c.file or str(tmp_path / "spec.yaml")
    where = f"{err.line}:{err.col}" if err.line is not None else None
    assert (err.file, where, err.path) == (file, c.where, c.path), str(err)
    assert c.message in err.message, str(err)
    prefix = file + (f":{c.where}" if c.where else "") + ":" + (f" {c.path}:" if c.path else "")
    assert str(err).startswith(prefix) and "\n" not in str(err), str(err)


@pytest.mark.skipif(BOUNDED is None, reason="no registered attention type with caps.bounded")
def test_bounded_type_without_max_len():
    """Every task kind has a max_len today; the check guards the graph forms and future kinds."""
    attn = AttentionSpec(candidates=["softmax", BOUNDED])
    with pytest.raises(SpecError, match="needs the task's max_len") as info:
        check_attention(attn, ("model", "attention"), lambda m, p: SpecError(m, path=format_path(p)),
                        n_heads=4, max_len=None)
    assert info.value.path == "model.attention.candidates[1]"
    check_attention(attn, ("model", "attention"), lambda m, p: SpecError(m), n_heads=4, max_len=64)


def test_python_tag_runs_nothing(tmp_path: Path):
    marker = tmp_path / "pwned"
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"name: !!python/object/apply:os.system ['touch {marker}']\n" + GOOD[11:])
    with pytest.raises(SpecError, match="is not allowed"):
        load_spec(spec)
    assert not marker.exists()


def test_recursive_alias_is_an_error(tmp_path: Path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(GOOD + "bench: &b {seq_lens: *b}\n")
    with pytest.raises(SpecError, match="recursive alias") as info:
        load_spec(spec)
    assert info.value.path == "bench.seq_lens"


def test_not_utf8_is_located(tmp_path: Path):
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(GOOD.encode() + b"  dropout: \xff\n")
    with pytest.raises(SpecError, match=r"not UTF-8 text \(byte 0xff\)") as info:
        load_spec(spec)
    assert (info.value.line, info.value.col) == (9, 12)


def test_directory_is_an_error(tmp_path: Path):
    with pytest.raises(SpecError, match="is a directory"):
        load_spec(tmp_path)
