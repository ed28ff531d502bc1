"""A run on two processes (jax.distributed on 127.0.0.1, one shared --out), killed with SIGKILL on
both mid-run and started again with the same commands, ends byte-identical to an uninterrupted
two-process run: a sweep and a successive-halving search. Every process saves its own members'
shards into the shared checkpoint; process 0 writes the results."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jaxlabs.store import saved_position
from test_determinism import without_timing
from test_devices import free_port

# members split over the two processes; long enough that the kill lands mid-training
SWEEP = ["experiments.lr_sweep", "--n", "60", "--epochs", "8000", "--width", "8", "--depth", "2", "--seeds", "2",
         "--lr", "0.01,0.05", "--tolerance", "1e-9", "--plan", "map", "--no-tensorboard"]
SEARCH = ["experiments.search", "--n", "60", "--epochs", "4000", "--width", "8", "--depth", "2", "--method", "halving",
          "--members", "4", "--eta", "2", "--rungs", "1", "--plan", "map", "--seed", "5"]


def both(command: list[str], out: Path, every: str) -> list[subprocess.Popen]:
    port = free_port()
    return [subprocess.Popen([sys.executable, "-m", *command, "--no-progress", "--out", str(out), "--checkpoint-every",
                              every, "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                              "--process-id", str(i), "--connect-timeout", "60"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]


def finished(procs: list[subprocess.Popen]) -> list[str]:
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-3000:] for o in outs]
    return [o[0] for o in outs]


@pytest.mark.parametrize("command", [SWEEP, SEARCH], ids=["sweep", "halving"])
def test_two_processes_killed_mid_run_resume_to_the_uninterrupted_results(tmp_path, command):
    reference, out = tmp_path / "reference", tmp_path / "run"
    finished(both(command, reference, "0"))
    procs = both(command, out, "0.3s")
    deadline = time.monotonic() + 300
    while (saved_position(out) or {}).get("start", 0) <= 0:  # a checkpoint taken mid-training
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        assert time.monotonic() < deadline, "no checkpoint written"
        time.sleep(0.02)
    for p in procs:
        os.kill(p.pid, signal.SIGKILL)
    for p in procs:
        p.wait()
    assert not (out / "results.csv").exists()
    stdout = finished(both(command, out, "0.3s"))[0]
    assert "resuming " in stdout and " from epoch " in stdout, stdout
    assert (out / "curves.npz").read_bytes() == (reference / "curves.npz").read_bytes()
    assert without_timing((out / "results.csv").read_bytes()) == without_timing((reference / "results.csv").read_bytes())
