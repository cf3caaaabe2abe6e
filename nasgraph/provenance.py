"""Where a derived spec came from: the search run records its source spec and overrides
(RUN/source.json), and every derived spec starts with a comment saying so."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from nasgraph.outfile import atomic_write_text


def record_source(run: Path, doc, overrides: Sequence[str]) -> None:
    """RUN/source.json: the spec file a search ran and its --set overrides."""
    source = {"spec": str(Path(doc.path).resolve()), "overrides": list(overrides)}
    (run / "source.json").write_text(json.dumps(source, indent=1))


def mark_derived(run: Path, doc, overrides: Sequence[str], labels: dict[str, list[str]]) -> None:
    """After a search: RUN/source.json and the header comment of RUN/derived.yaml (rank 0 under torchrun)."""
    from nasgraph import distributed

    if not distributed.is_writer():
        return
    record_source(run, doc, overrides)
    derived = run / "derived.yaml"
    atomic_write_text(derived, header(run, None, labels) + derived.read_text())


def header(run: Path, seed: int | None, labels: dict[str, list[str]]) -> str:
    """The comment a derived spec starts with: which run, spec and overrides it came from, and the picks."""
    from nasgraph import __version__

    try:
        source = json.loads((run / "source.json").read_text())
    except (OSError, ValueError):
        source = {}
    sets = " ".join(f"--set {o}" for o in source.get("overrides", []))
    picks = "; ".join(f"{n}: {' | '.join(dict.fromkeys(l)) if len(set(l)) == 1 else ' | '.join(l)}"
                      for n, l in labels.items())
    return "".join(f"# {line}\n" for line in [
        f"derived by nasgraph {__version__} from the search run {run.resolve()} "
        f"({'the vote over seeds' if seed is None else f'seed {seed}'})",
        f"source spec: {source.get('spec', str((run / 'spec.yaml').resolve()) + ' (the run snapshot)')}"
        + (f" with {sets}" if sets else ""),
        f"picks: {picks}"])
