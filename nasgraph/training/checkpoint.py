"""Checkpoints that cannot run code and survive kill -9.

Files are read with `torch.load(weights_only=True)`: only tensors and plain data (dict, list, tuple,
str, int, float, bool, None) come back; a file holding anything else (a pickled object whose loading
would run code) is refused before any of it runs. So the state we save is plain data too: RNG states
as tensors and tuples of ints, never numpy objects.

A folder keeps two: `last.pt` and `prev.pt`. A save writes `.last.pt.tmp`, fsyncs it, moves
last -> prev, then tmp -> last; a kill at any point leaves a readable `last.pt` or `prev.pt`, and the
next open removes the stale temporary file.
"""
from __future__ import annotations

import os
import pickle
import random
import re
import sys
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from nasgraph.errors import NasgraphError

FORMAT = "nasgraph-checkpoint"
VERSION = 1
LAST, PREV = "last.pt", "prev.pt"


class CheckpointError(NasgraphError):
    """A file that is not a readable nasgraph checkpoint; `unsafe` when it holds code-running objects."""

    def __init__(self, message: str, unsafe: bool = False):
        self.unsafe = unsafe
        super().__init__(message)


def rng_state() -> dict:
    """Every RNG the loop uses, as tensors and tuples (loadable with weights_only=True)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": random.getstate(),
            "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "gauss": float(gauss)},
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []}


def set_rng_state(s: dict) -> None:
    torch.set_rng_state(s["torch"])
    version, internal, gauss = s["python"]
    random.setstate((version, tuple(internal), gauss))
    n = s["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    cuda = s.get("cuda") or []      # a run resumed on another device (or another GPU count) keeps what fits
    if cuda and torch.cuda.is_available():
        for i, state in enumerate(cuda[:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(state, i)


ZIP_MAGIC, PICKLE_MAGIC = b"PK\x03\x04", b"\x80"   # torch.save's zip archive; a pickle of protocol >= 2


def _describe(err: Exception) -> str:
    """The loader's message, its first sentence only (torch appends paragraphs of advice)."""
    text = re.sub(r"^\[enforce fail at [^\]]*\][\s.]*", "", (str(err).strip().splitlines() or [""])[0])
    text = text.split(". ")[0].rstrip(".")
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _check_archive(path: Path, size: int) -> None:
    """A torch zip archive cut short or with changed bytes (torch reads the latter silently) as a
    CheckpointError saying which; every member's CRC is checked (one read of the file)."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, zlib.error) as err:
        if "central directory" in str(err) or "not a zip file" in str(err).lower():
            raise CheckpointError(f"{path}: truncated checkpoint: a torch zip archive of {size:,} bytes without its "
                                  f"end (the archive's index): the write or the copy was cut short") from None
        raise CheckpointError(f"{path}: damaged checkpoint: a torch zip archive of {size:,} bytes that does not "
                              f"read ({_describe(err)})") from None
    if bad is not None:
        raise CheckpointError(f"{path}: damaged checkpoint: member '{bad}' of the torch zip archive fails its "
                              f"CRC check (bytes changed after it was saved)")


def read_file(path: str | Path) -> object:
    """torch.load(path, weights_only=True) with every failure as one clean CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path}: empty file (0 bytes), not a checkpoint")
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(ZIP_MAGIC):
        _check_archive(path, size)
    try:
        with warnings.catch_warnings():   # torch warns about foreign pickle protocols: the error says enough
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = next((l.split("GLOBAL", 1)[1].split(" was ")[0].strip() for l in str(err).splitlines()
                      if "GLOBAL" in l), None)
        if found and found.startswith("numpy"):
            raise CheckpointError(f"{path}: refused: it pickles numpy objects ({found}), as checkpoints of "
                                  f"earlier nasgraph versions did; those cannot be loaded without trusting the file "
                                  f"to run code, so nothing in it was run: re-run the training with this version",
                                  unsafe=True) from None
        if found:
            raise CheckpointError(f"{path}: refused: it holds {found}, which only a code-running pickle needs "
                                  f"(a nasgraph checkpoint holds tensors and plain data); nothing in it was run",
                                  unsafe=True) from None
        if not head.startswith(PICKLE_MAGIC):
            raise CheckpointError(f"{path}: not a checkpoint: neither a torch zip archive nor a pickle (it starts "
                                  f"with {head!r}); nothing in it was run") from None
        opcode = next((l.strip() for l in str(err).splitlines() if l.strip().startswith("Unsupported")), "")
        raise CheckpointError(f"{path}: not a readable checkpoint (not a torch archive, and a pickle stream the "
                              f"safe loader does not read{': ' + opcode.lower() if opcode else ''}); nothing in it "
                              f"was run") from None
    except EOFError:
        raise CheckpointError(f"{path}: truncated checkpoint: its pickle stream ends early ({size:,} bytes)") from None
    except (RuntimeError, OSError, ValueError, zipfile.BadZipFile, KeyError, IndexError) as err:
        what = ("a zip archive but not a torch checkpoint" if head.startswith(ZIP_MAGIC) and "archive" in str(err)
                else "damaged checkpoint, not readable")
        raise CheckpointError(f"{path}: {what} ({_describe(err)})") from None
    except Exception as err:  # noqa: BLE001 - any other loader failure is still a bad file, not a bug of ours
        raise CheckpointError(f"{path}: not a readable checkpoint ({_describe(err)})") from None


def read_state(path: str | Path) -> dict:
    """A full training state written by `Checkpoints.save` (model, optimizers, positions, RNGs)."""
    state = read_file(path)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a nasgraph training checkpoint (no '{FORMAT}' format tag)")
    if state.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {state.get('version')!r}; this nasgraph reads "
                              f"version {VERSION}")
    missing = [k for k in ("model", "opt", "sched", "stream", "step", "best", "rng") if k not in state]
    if missing:
        raise CheckpointError(f"{path}: incomplete checkpoint (missing {', '.join(missing)})")
    return state


def model_weights(path: str | Path) -> dict:
    """The model state_dict of a checkpoint, or of a file holding a bare state_dict."""
    state = read_file(path)
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: not a model checkpoint (expected a state_dict of tensors or a dict with "
                              f"'model', got {type(state).__name__})")
    return state


def misfit(model: torch.nn.Module, state: dict) -> str | None:
    """Why `state` does not load into `model`, in one line (None when it fits): other weight names
    (another model) or other shapes (another size)."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        return f"its weights are not a state_dict of tensors (got {type(state).__name__})"
    want = model.state_dict()
    missing, unexpected = sorted(set(want) - set(state)), sorted(set(state) - set(want))
    if missing or unexpected:
        return (f"a checkpoint of another model: {len(missing)} of the model's {len(want)} weights missing "
                f"({_few(missing)}), {len(unexpected)} not in the model ({_few(unexpected)})")
    shaped = [k for k, v in want.items() if tuple(v.shape) != tuple(state[k].shape)]
    if shaped:
        k = shaped[0]
        return (f"a checkpoint of another size: {len(shaped)} weight(s) differ in shape, e.g. {k} is "
                f"{tuple(state[k].shape)} in the checkpoint, {tuple(want[k].shape)} in the model")
    return None


def _few(keys: list[str]) -> str:
    return ", ".join(keys[:3]) + (f" (+{len(keys) - 3} more)" if len(keys) > 3 else "") if keys else "none"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class Checkpoints:
    """The two newest checkpoints of a run (`last.pt`, `prev.pt`) in `folder`."""

    def __init__(self, folder: str | Path, clean: bool = True):
        """`clean`: remove a temporary file a killed save left (only the process that writes does)."""
        self.folder = Path(folder)
        self.last, self.prev, self.tmp = self.folder / LAST, self.folder / PREV, self.folder / f".{LAST}.tmp"
        if clean and self.folder.is_dir():
            for stale in {*self.folder.glob(f".{LAST}.*"), *self.folder.glob(".*.tmp")}:   # a kill mid-save (best.pt too)
                stale.unlink(missing_ok=True)

    def exists(self) -> bool:
        return self.last.exists() or self.prev.exists()

    def save(self, state: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            with open(self.tmp, "wb") as f:
                torch.save({"format": FORMAT, "version": VERSION, **state}, f)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise
        if self.last.exists():
            os.replace(self.last, self.prev)
        os.replace(self.tmp, self.last)
        _fsync_dir(self.folder)

    def load(self) -> dict | None:
        """The newest readable state (last, else prev with a warning), None if there is none.

        A file refused as unsafe is never skipped over: that is tampering, not damage.
        """
        errors = []
        for path in (self.last, self.prev):
            if not path.exists():
                continue
            try:
                state = read_state(path)
            except CheckpointError as err:
                if err.unsafe:
                    raise
                errors.append(err)
                continue
            if errors:   # keep the damaged one aside, so the next save does not rotate it into prev.pt
                os.replace(self.last, self.folder / f"{LAST}.damaged")
                print(f"nasgraph: warning: {errors[0]}; resuming from {path.name} (step {state['step']}); the "
                      f"damaged file is kept as {LAST}.damaged", file=sys.stderr)
            return state
        if errors:
            more = f" ({self.prev.name} too)" if len(errors) > 1 else ""
            raise CheckpointError(f"{errors[0]}{more}; no readable checkpoint to resume from")
        return None
