"""Helpers for tests of hostile input: a clean refusal (exit 2, one line naming the file, no
traceback) that leaves every file it was given as it was."""
from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

from nasgraph.cli import main


def tree_hash(*paths: Path) -> dict[str, str]:
    """sha256 of every file under `paths` (files or folders), by path; absent paths map to 'absent'."""
    out = {}
    for root in map(Path, paths):
        if not root.exists():
            out[str(root)] = "absent"
            continue
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for f in files:
            out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def refused(capsys, argv: list[str], *names: str, keep: tuple[Path, ...] = ()) -> str:
    """Run the CLI; assert exit 2, one stderr line naming each of `names`, no traceback, `keep` unchanged."""
    before = tree_hash(*keep)
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:   # argparse: usage mistakes
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, (code, err)
    assert "Traceback" not in err, err
    lines = [l for l in err.splitlines() if l.strip() and not l.startswith("nasgraph: warning")]
    assert len(lines) == 1, err
    assert lines[0].isprintable(), f"control characters in the message: {lines[0]!r}"
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    assert tree_hash(*keep) == before, "a file the user had was changed"
    return lines[0]


class Payload:
    """Unpickling this runs code: it writes `flag` (what a crafted checkpoint would do)."""

    def __init__(self, flag: Path):
        self.flag = str(flag)

    def __reduce__(self):
        return (exec, (f"open({self.flag!r}, 'w').write('payload ran')",))


def crafted_checkpoint(path: Path, flag: Path, *, raw_pickle: bool = False) -> Path:
    """A .pt whose loading with weights_only=False would write `flag`: a torch zip or a bare pickle."""
    import torch

    state = {"model": {"w": torch.zeros(1)}, "evil": Payload(flag)}
    if raw_pickle:
        path.write_bytes(pickle.dumps(state))
    else:
        torch.save(state, path)
    return path
