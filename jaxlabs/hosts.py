"""How a command joins the other processes of a run: JAX's multi-process runtime
(``jax.distributed``), from a coordinator address or from a cluster environment it reads by itself
(SLURM with several tasks). One process alone does nothing. A process that cannot reach the others stops after a timeout
with an :class:`~jaxlabs.engine.options.OptionError`, never hangs."""
from __future__ import annotations

import os
import socket
import time
from typing import Optional

import jax

from jaxlabs.engine.options import OptionError


def join(coordinator: Optional[str], num_processes: Optional[int], process_id: Optional[int], timeout: int) -> None:
    """Join the other processes at ``coordinator`` (HOST:PORT of process 0) as ``process_id`` of
    ``num_processes``; all three None: join a SLURM job's processes if there are several."""
    flags = (coordinator, num_processes, process_id)
    if all(f is None for f in flags):
        if int(os.environ.get("SLURM_NTASKS", "1")) > 1:
            _initialize({}, timeout, "the SLURM job's coordinator")
        return
    if any(f is None for f in flags):
        raise OptionError("coordinator", "several processes need all of --coordinator HOST:PORT, "
                                         "--num-processes N and --process-id I")
    if process_id >= num_processes:
        raise OptionError("process_id", f"{process_id} is not below --num-processes {num_processes}; "
                                        f"number the processes 0 .. {num_processes - 1}")
    if num_processes == 1:
        return
    _initialize({"coordinator_address": coordinator, "num_processes": num_processes, "process_id": process_id},
                timeout, coordinator)


def _wait_for_coordinator(address: str, timeout: int) -> None:
    """Until the coordinator's port answers, or an error after ``timeout`` seconds: JAX's client
    aborts the whole process (a fatal log, no exception) when it cannot register."""
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=1).close()
            return
        except OSError as e:
            if time.monotonic() >= deadline:
                raise OptionError("coordinator", f"could not join the other processes at {address} within "
                                                 f"{timeout} s ({e.strerror or e}); start process 0 first, give every "
                                                 "process the same --coordinator and --num-processes, or raise "
                                                 "--connect-timeout") from None
            time.sleep(0.5)


def _initialize(kwargs: dict, timeout: int, where: str) -> None:
    if kwargs.get("process_id"):  # process 0 is the coordinator: the others wait for it first
        _wait_for_coordinator(kwargs["coordinator_address"], timeout)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU processes gather results
    try:
        jax.distributed.initialize(**kwargs, initialization_timeout=timeout)
    except Exception as e:  # noqa: BLE001 - the runtime raises several kinds; all mean the same here
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise OptionError("coordinator", f"could not join the other processes at {where} within {timeout} s "
                                         f"({reason}); start every process with the same --coordinator and "
                                         "--num-processes, or raise --connect-timeout") from None
