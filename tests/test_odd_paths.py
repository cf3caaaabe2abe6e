"""Output paths users get wrong: names that are not UTF-8, links that lead nowhere or loop; text with such a
name in it (a report, a derived spec's header, a plot label) is written with U+FFFD, not a traceback."""
from __future__ import annotations

import os

import pytest

from nasgraph.cli import main
from nasgraph.outfile import atomic_write_text
from nasgraph.spec.dump import dump_spec

BAD = "r\udcff"                                   # argv's form of the byte 0xff in a file name


@pytest.mark.parametrize("argv", [["compile", "{spec}", "--out", BAD], ["data", "listops", "--n", "3", "-o", BAD],
                                  ["train", "{spec}", "--out", BAD], ["export", "{spec}", "-o", BAD]])
def test_an_output_name_that_is_not_utf8_is_refused_first(argv, tiny_spec, tmp_path, monkeypatch, capsys):
    """train wrote the run, then failed on report.md (UnicodeEncodeError); export failed in onnx.checker."""
    monkeypatch.chdir(tmp_path)
    spec = tiny_spec()
    assert main([a.format(spec=spec) for a in argv]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "r\\xff: the path is not UTF-8 (byte 0xff)" in err, err
    assert os.listdir(tmp_path) == ["spec.yaml"]


@pytest.mark.parametrize("target", ["loop", "missing/folder"])
def test_an_out_link_to_nowhere_is_named(target, tiny_spec, tmp_path, monkeypatch, capsys):
    """It said 'cannot create the run folder (File exists)'."""
    monkeypatch.chdir(tmp_path)
    spec = tiny_spec()
    (tmp_path / "loop").symlink_to(target)
    assert main(["compile", str(spec), "--out", "loop"]) == 2
    assert f"loop is a symbolic link to {target}, which is no folder" in capsys.readouterr().err


def test_text_naming_such_a_folder_is_written_with_a_replacement(tmp_path):
    atomic_write_text(tmp_path / "report.md", f"# run {BAD}\n")
    assert (tmp_path / "report.md").read_text(encoding="utf-8") == "# run r\ufffd\n"
    dump_spec({"name": "x"}, tmp_path / "d.yaml", header=f"# derived from {BAD}\n")
    assert (tmp_path / "d.yaml").read_text(encoding="utf-8") == "# derived from r\ufffd\n{name: x}\n"


def test_a_plot_label_naming_such_a_folder_is_drawn(tmp_path):
    from nasgraph.plotting import finish_plot, pyplot

    fig, ax = pyplot().subplots()
    ax.plot([0, 1], [0, 1], label=BAD)
    ax.set_title(BAD)
    finish_plot(fig, tmp_path / "p.png", ax)
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
