"""Hostile specs through `nasgraph compile`, each in its own process with a time and memory limit.

    python benchmarks/fuzz_specs.py --cases 1200 --seed 0 --jobs 2 --timeout 20 --memory-gb 6 [--keep DIR]

A parent process imports nasgraph once and forks one child per case (cheap: the imports are shared);
the child sets RLIMIT_AS, runs the CLI's main() on the case and exits with its code. Outcomes:

  ok             exit 0
  clean error    exit 2, one line on stderr, naming file:line:col and a key (or a file-level problem)
  no key         exit 2, one line naming a line but no key path
  multi-line     exit 2 with more than one line on stderr
  traceback      any other exit, or a Python traceback on stderr
  memory         killed, MemoryError or an allocator failure under the memory limit
  hang           still running after --timeout CPU seconds, or 10 x that in wall time (killed)

Cases come from tests/spec_mutations.py (seeded). --keep writes every case that is not ok / clean
error to DIR with its overrides and output, to reproduce it.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from spec_mutations import OUTCOMES, classify, make_case  # noqa: E402

def _child(spec: Path, overrides: list[str], out: Path, memory: int) -> None:
    """Runs in the forked child: limits, redirections, the CLI; never returns."""
    import resource
    import traceback

    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    fd_out, fd_err = os.open(out / "stdout", os.O_WRONLY | os.O_CREAT), os.open(out / "stderr", os.O_WRONLY | os.O_CREAT)
    os.dup2(fd_out, 1)
    os.dup2(fd_err, 2)
    sys.stdout = open(1, "w", closefd=False)
    sys.stderr = open(2, "w", closefd=False, errors="backslashreplace")
    code = 1
    try:
        from nasgraph.cli import main

        code = main(["compile", str(spec), *[a for o in overrides for a in ("--set", o)]])
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:  # noqa: BLE001 - the point is to see it
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


WALL_FACTOR = 10   # a busy shared machine stretches wall time; CPU time is what a hang burns


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running child (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def run_cases(cases, jobs: int, timeout: float, memory: int, work: Path):
    """Yield (index, kind, outcome, stderr, seconds) as the children finish."""
    running: dict[int, tuple[int, float, Path, str]] = {}
    queue = [(i, c) for i, c in enumerate(cases) if c is not None]
    while queue or running:
        while queue and len(running) < jobs:
            i, (kind, body, overrides) = queue.pop(0)
            folder = work / f"case{i}"
            folder.mkdir()
            (folder / "spec.yaml").write_bytes(body)
            (folder / "overrides.json").write_text(json.dumps(overrides, ensure_ascii=True))
            pid = os.fork()
            if pid == 0:
                _child(folder / "spec.yaml", overrides, folder, memory)
            running[pid] = (i, time.monotonic(), folder, kind)
        time.sleep(0.02)
        for pid, (i, start, folder, kind) in list(running.items()):
            cpu = _cpu_seconds(pid)
            done, status = os.waitpid(pid, os.WNOHANG)
            late = cpu > timeout or time.monotonic() - start > WALL_FACTOR * timeout
            if not done and late:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            if done or late:
                del running[pid]
                err = (folder / "stderr").read_text(errors="replace") if (folder / "stderr").exists() else ""
                killed = bool(done) and os.WIFSIGNALED(status)
                rc = os.WEXITSTATUS(status) if done and os.WIFEXITED(status) else None
                yield i, kind, classify(rc, err, late and not done, killed), err, time.monotonic() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=1200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=20.0, help="CPU seconds per case (wall: 10 x)")
    ap.add_argument("--memory-gb", type=float, default=6.0, help="RLIMIT_AS per case")
    ap.add_argument("--keep", type=Path, help="write the cases that are not ok / clean error here")
    ap.add_argument("--log", type=Path, help="write one line per case (index, kind, outcome, last stderr line)")
    ap.add_argument("--only", help="comma-separated case indices to run (of the --cases generated from --seed)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from nasgraph.cli import build_parser

    build_parser()                                   # imports every command once, shared with the children
    from nasgraph.graph import compile_spec
    from nasgraph.graph.resources import estimate
    from nasgraph.spec import load_spec

    estimate(compile_spec(load_spec(ROOT / "specs" / "listops_homogeneous.yaml"), force=True))  # warm meta kernels

    rng = random.Random(args.seed)
    cases = [make_case(rng) for _ in range(args.cases)]
    if args.only:   # the same seed gives the same cases: rerun a few by index
        keep = {int(i) for i in args.only.split(",")}
        cases = [c if i in keep else None for i, c in enumerate(cases)]
    counts, by_kind, worst = Counter(), Counter(), []
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for i, kind, outcome, err, seconds in run_cases(cases, args.jobs, args.timeout,
                                                        int(args.memory_gb * 2 ** 30), Path(tmp)):
            counts[outcome] += 1
            if args.log:
                with open(args.log, "a") as fh:
                    fh.write(f"{i}\t{kind}\t{outcome}\t{seconds:.1f}s\t{(err.strip().splitlines() or [''])[-1][:300]}\n")
            if outcome not in ("ok", "clean error"):
                by_kind[(kind, outcome)] += 1
                worst.append((i, kind, outcome, err.strip().splitlines()[-1:] or [""]))
                if args.keep:
                    dest = args.keep / f"case{i}-{outcome.replace(' ', '-')}"
                    dest.mkdir(parents=True, exist_ok=True)
                    for f in Path(tmp, f"case{i}").iterdir():
                        (dest / f.name).write_bytes(f.read_bytes())
    print(f"{sum(counts.values())} hostile specs (seed {args.seed}), {args.timeout:g} CPU s and {args.memory_gb:g} GB per case, "
          f"{time.time() - start:.0f} s")
    print(f"{'outcome':<12} {'cases':>6}")
    for outcome in OUTCOMES:
        print(f"{outcome:<12} {counts[outcome]:>6}")
    for (kind, outcome), n in sorted(by_kind.items()):
        print(f"  {outcome}: {kind} x{n}")
    for i, kind, outcome, last in worst[:15]:
        print(f"  case {i} ({kind}, {outcome}): {last[0][:200]}")
    bad = sum(counts[o] for o in ("traceback", "memory", "hang", "multi-line"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
