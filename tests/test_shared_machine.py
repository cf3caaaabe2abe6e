"""The CLI behaves on a shared machine: passive OpenMP waiting and a thread count within the cores
the process may use, each unless the user set it; set before torch loads."""
from __future__ import annotations

import os
import subprocess
import sys

from nasgraph.threads import available_cores, thread_count

PROBE = ("import sys; import nasgraph.cli; assert 'torch' not in sys.modules, 'torch loaded before the defaults'; "
         "import os, torch; print(os.environ['OMP_WAIT_POLICY'], os.environ['OMP_NUM_THREADS'], torch.get_num_threads())")


def _probe(**env) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env={**clean, **env})
    assert r.returncode == 0, r.stderr[-800:]
    return r.stdout.split()


def test_cli_sets_passive_waiting_and_threads_before_torch_loads():
    policy, omp, torch_threads = _probe()
    assert policy == "PASSIVE" and int(omp) == available_cores() and int(torch_threads) == available_cores()


def test_cli_keeps_what_the_user_set():
    assert _probe(OMP_WAIT_POLICY="ACTIVE", OMP_NUM_THREADS="1") == ["ACTIVE", "1", "1"]


def test_thread_count_is_capped_by_the_available_cores():
    n = available_cores()
    assert thread_count() == n and thread_count(1) == 1 and thread_count(n + 7) == n
