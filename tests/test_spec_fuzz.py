"""Property: every hostile spec (tests/spec_mutations.py) compiles or is refused with one located line.

Runs `nasgraph compile` in-process on cases mutated from specs/*.yaml at every key path, with a time
limit (SIGALRM) and an address-space limit per case; a fixed seed and a bounded number of examples
keep it deterministic and short. benchmarks/fuzz_specs.py runs thousands in subprocesses.
"""
from __future__ import annotations

import contextlib
import io
import random
import resource
import signal
import tempfile
import traceback
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="the spec fuzzer needs hypothesis (the `test` extra)")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from nasgraph.cli import main  # noqa: E402
from spec_mutations import classify, key_paths, load_examples, make_case  # noqa: E402

SECONDS_PER_CASE = 60
MEMORY_HEADROOM = 4 << 30      # address space a case may add to the test process


class _Hang(BaseException):
    """Raised by SIGALRM: a case ran past SECONDS_PER_CASE."""


def _vm_size() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


@contextlib.contextmanager
def _limits():
    """SIGALRM after SECONDS_PER_CASE; RLIMIT_AS at the current size + MEMORY_HEADROOM (restored after)."""
    def on_alarm(signum, frame):
        raise _Hang()

    old_handler = signal.signal(signal.SIGALRM, on_alarm)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _vm_size() + MEMORY_HEADROOM
    resource.setrlimit(resource.RLIMIT_AS, (min(limit, hard) if hard != resource.RLIM_INFINITY else limit, hard))
    signal.alarm(SECONDS_PER_CASE)
    try:
        yield
    finally:
        signal.alarm(0)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        signal.signal(signal.SIGALRM, old_handler)


def run_compile(body: bytes, overrides: list[str]) -> tuple[str, str]:
    """(outcome, stderr) of `nasgraph compile` on one case, in this process."""
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "spec.yaml"
        spec.write_bytes(body)
        err, rc, hung = io.StringIO(), None, False
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                with _limits():
                    rc = main(["compile", str(spec), *[a for o in overrides for a in ("--set", o)]])
            except _Hang:
                hung = True
            except BaseException:  # noqa: BLE001 - a traceback is the finding
                err.write(traceback.format_exc())
                rc = 1
        return classify(rc, err.getvalue(), hung, False), err.getvalue()


def test_every_key_path_is_reached():
    """The mutations can reach every key path of every example spec."""
    for name, data in load_examples():
        assert len(key_paths(data)) > 20, name


@settings(max_examples=40, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 32 - 1))
def test_hostile_spec_compiles_or_is_one_located_line(seed: int):
    kind, body, overrides = make_case(random.Random(seed))
    outcome, err = run_compile(body, overrides)
    assert outcome in ("ok", "clean error"), f"{kind} {overrides}: {outcome}\n{err[-2000:]}\n{body[:500]!r}"
