"""Which weights of a train run to export: the best validation checkpoint by default, else the last.

`nasgraph train` keeps `checkpoints/last.pt` (to resume) and `checkpoints/best.pt` (the weights of the
best validation accuracy so far, with its step and metrics). Runs trained before best.pt existed
fall back to last.pt, and the description says so.

Example:
    >>> select_checkpoint(Path("runs/train"))
    (PosixPath('runs/train/checkpoints/best.pt'), 'best validation checkpoint (step 800, val acc 0.6125)')
"""
from __future__ import annotations

from pathlib import Path
import torch

from nasgraph.errors import NasgraphError

WEIGHTS = ("best", "last")


def select_checkpoint(run_dir: str | Path, weights: str = "best") -> tuple[Path, str]:
    """(checkpoint file, description) of a train run folder for `weights` ("best" or "last")."""
    from nasgraph.runfolder import require
    from nasgraph.training.checkpoint import read_file

    if weights not in WEIGHTS:
        raise NasgraphError(f"unknown weights '{weights}'; valid: {', '.join(WEIGHTS)}")
    run_dir = require(run_dir, "train", "needs spec.yaml and checkpoints/last.pt")
    last, best = run_dir / "checkpoints" / "last.pt", run_dir / "checkpoints" / "best.pt"
    if not (run_dir / "spec.yaml").exists() or not last.exists():
        raise NasgraphError(f"{run_dir}: not a finished train run (needs spec.yaml and checkpoints/last.pt)")
    if weights == "last":
        return last, "last checkpoint (the end of training)"
    if not best.exists():
        return last, "last checkpoint (this run has no checkpoints/best.pt: trained before best-checkpoint saving)"
    try:
        info = read_file(best)   # weights_only: refuses a file that would run code
        metric = str(info.get("metric", "acc"))
        step, score = int(info["step"]), float(info["val"][metric])
    except (NasgraphError, AttributeError, KeyError, TypeError, ValueError) as err:
        raise NasgraphError(f"{best}: unreadable best checkpoint ({err}); export the last one with "
                            "--weights last") from None
    return best, f"best validation checkpoint (step {step}, val {metric} {score:.4f})"


def load_checkpoint(model: torch.nn.Module, checkpoint: str | Path) -> None:
    """Load a checkpoint ({"model": state_dict, ...} or a bare state_dict) into `model`, strictly.

    Only tensors and plain data are read (torch.load weights_only=True); see nasgraph.training.checkpoint.
    """
    from nasgraph.training.checkpoint import misfit, model_weights

    checkpoint = Path(checkpoint)
    if checkpoint.is_dir():
        raise NasgraphError(f"{checkpoint}: a folder, not a checkpoint file (a train run's weights are "
                            f"{checkpoint}/checkpoints/best.pt; or export the run folder itself)")
    if not checkpoint.is_file():
        raise NasgraphError(f"no checkpoint at {checkpoint}")
    state = model_weights(checkpoint)   # weights_only: a file that would run code is refused, not loaded
    problem = misfit(model, state)
    if problem:
        raise NasgraphError(f"{checkpoint} does not fit the spec's model: {problem}")
    model.load_state_dict(state)
