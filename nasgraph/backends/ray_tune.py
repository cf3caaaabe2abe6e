"""Trials as Ray Tune trials (the `[ray]` extra): one CPU each, on a local Ray or a running cluster.

`gpus_per_trial` adds a GPU share to each trial (0.25: four trials share one GPU; Ray sets each trial's
CUDA_VISIBLE_DEVICES) and trains it on `cuda`; a cluster without that many GPUs is refused when the
backend opens, before any trial waits for resources it will never get.

nasgraph starts a local Ray with `workers` CPUs (no dashboard, errors only) and shuts it down after
the search; `address` ("auto", "host:port", "ray://host:10001") connects to a running cluster instead
(every node needs nasgraph installed and the run folder on a shared file system: trials write there).
A batch is one Tune experiment of function trials (FIFO: the strategy decides between batches, so a
pick never depends on which trial finished first); Tune's own logs go to `<folder>/ray/<time>-<batch>/`.
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path

from tqdm.auto import tqdm

from nasgraph.backends.base import TrialBackend
from nasgraph.backends.registry import register
from nasgraph.errors import ConfigError, NasgraphError
from nasgraph.threads import available_cores

QUIET = {"RAY_AIR_NEW_OUTPUT": "0", "RAY_USAGE_STATS_ENABLED": "0"}


def _trial(config: dict, fn, items) -> None:
    """The Tune function trainable: run one item, report its record (as JSON: floats come back exact)."""
    from ray import tune

    tune.report({"record": json.dumps(fn(items[config["index"]]))})


@register("ray")
class RayTune(TrialBackend):
    threads = 1      # one CPU per trial
    remote = True

    @classmethod
    def check(cls, workers, address, gpus_per_trial=None) -> None:
        if gpus_per_trial is not None and gpus_per_trial > 1 and gpus_per_trial != int(gpus_per_trial):
            raise ConfigError(f"gpus_per_trial {gpus_per_trial}: a share of one GPU (0 < x <= 1) or a whole number "
                              f"of GPUs (Ray cannot split a trial over part of a second GPU)", key="gpus_per_trial")

    @property
    def device(self) -> str | None:
        return "cuda" if self.gpus_per_trial else None

    def resources(self) -> dict[str, float]:
        """What each trial holds: one CPU, plus its GPU share."""
        return {"cpu": 1, **({"gpu": self.gpus_per_trial} if self.gpus_per_trial else {})}

    def open(self) -> "RayTune":
        for k, v in QUIET.items():
            os.environ.setdefault(k, v)
        try:
            import ray
        except ImportError:
            raise NasgraphError("backend 'ray' needs Ray Tune: pip install 'nasgraph[ray]' "
                                "(or use the default backend in-process)") from None
        self._started = not ray.is_initialized()
        if self._started:
            where = {"address": self.address} if self.address else {"num_cpus": self.workers or available_cores()}
            try:
                ray.init(**where, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
                         runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}})
            except ConnectionError as err:
                raise NasgraphError(f"backend 'ray': cannot connect to the Ray cluster at {self.address!r}: "
                                    f"{err}") from None
        self._check_gpus(ray.cluster_resources())
        return self

    def _check_gpus(self, cluster: dict) -> None:
        """Refuse a GPU share the cluster cannot give (its trials would wait forever)."""
        if self.gpus_per_trial and cluster.get("GPU", 0) < self.gpus_per_trial:
            where = f"the Ray cluster at {self.address!r}" if self.address else "the local Ray (this machine)"
            self.close()
            raise NasgraphError(f"gpus_per_trial {self.gpus_per_trial}: {where} has {cluster.get('GPU', 0):g} GPUs; "
                                f"drop --gpus-per-trial to train trials on CPUs, or connect to a cluster with GPUs "
                                f"(--address)")

    def close(self) -> None:
        import ray

        if getattr(self, "_started", False):
            ray.shutdown()
            self._started = False

    def map(self, fn, items, *, names, desc, progress, folder: Path | None = None) -> list[dict]:
        from ray import tune

        if not items:
            return []
        bar = tqdm(total=len(items), desc=f"{desc} (ray)", disable=not progress)

        class Progress(tune.Callback):
            def on_trial_complete(self, iteration, trials, trial, **info):
                bar.update(1)

        trainable = tune.with_resources(tune.with_parameters(_trial, fn=fn, items=list(items)), self.resources())
        label = lambda trial: names[trial.config["index"]]
        storage = Path(folder or Path.cwd()).resolve() / "ray"
        batch = time.strftime("%Y%m%d-%H%M%S-") + re.sub(r"[^A-Za-z0-9_.-]+", "-", desc).strip("-")
        tuner = tune.Tuner(trainable, param_space={"index": tune.grid_search(list(range(len(items))))},
                           tune_config=tune.TuneConfig(max_concurrent_trials=self.workers, reuse_actors=True,
                                                       trial_name_creator=label,
                                                       trial_dirname_creator=label),
                           run_config=tune.RunConfig(name=batch, storage_path=str(storage),
                                                     verbose=0, callbacks=[Progress()],
                                                     failure_config=tune.FailureConfig(max_failures=0)))
        try:
            grid = tuner.fit()
        finally:
            bar.close()
        records: list[dict | None] = [None] * len(items)
        failed = []
        for result in grid:
            i = result.config["index"]
            if result.error is not None or "record" not in (result.metrics or {}):
                failed.append(f"{names[i]}: {last_line(result.error)}")
            else:
                records[i] = json.loads(result.metrics["record"])
        if failed:
            raise NasgraphError(f"{len(failed)} of {len(items)} trials failed on Ray ({'; '.join(failed[:3])}); "
                                f"Tune's logs: {storage / batch}; --resume reruns the unfinished ones")
        return records


def last_line(error) -> str:
    """The last non-empty line of a trial's error (the exception itself, not Ray's traceback)."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(error).__name__
