"""Past one machine: JAX's multi-controller runtime, started safely, and a local launcher.

One process per host (or per GPU) runs the same program; after
:func:`initialize`, ``jax.devices()`` lists every process's devices and
:func:`jaxopt_lab.sweep` shards its runs over all of them (each process builds and
trains only its own runs, and every process gets the whole result), while the
curvature operators take data that each process loaded in part
(:func:`shard_data`).

On a cluster, call ``jaxopt_lab.distributed.initialize()`` with no arguments: JAX
finds SLURM and Open MPI settings itself. On one machine, :func:`launch` (and
``jaxopt-lab sweep --processes N``) starts N processes on 127.0.0.1 with a free port,
for trying it out and for tests.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxopt_lab import _validation
from jaxopt_lab.distributed import _rendezvous

__all__ = ["free_port", "initialize", "launch", "shard_data"]

COORDINATOR = "JAXOPT_LAB_COORDINATOR"
NUM_PROCESSES = "JAXOPT_LAB_NUM_PROCESSES"
PROCESS_ID = "JAXOPT_LAB_PROCESS_ID"
INIT_TIMEOUT = "JAXOPT_LAB_INIT_TIMEOUT"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _initialized() -> bool:
    from jax._src import distributed as _jax_distributed  # no public query in JAX 0.10

    return _jax_distributed.global_state.client is not None


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    timeout: float | None = None,
    local_device_ids: Sequence[int] | None = None,
) -> None:
    """Starts JAX's distributed runtime; a missing process is an error, never a hang.

    With no arguments, reads the settings :func:`launch` passes (the environment
    variables ``JAXOPT_LAB_COORDINATOR``, ``JAXOPT_LAB_NUM_PROCESSES``,
    ``JAXOPT_LAB_PROCESS_ID``); without those, JAX detects the cluster (SLURM, Open MPI,
    ...) as ``jax.distributed.initialize()`` does. Calling it again is a no-op.

    With an explicit address, the processes first meet over TCP on it: process 0
    waits up to ``timeout`` seconds for the others, and if one does not come (dead,
    never started, another address or another ``num_processes``), every process that
    did come raises a ``RuntimeError`` naming the missing ones, instead of JAX's abort.
    After that, a process that dies is noticed by JAX's heartbeat within ``timeout``.

    Args:
      coordinator_address: ``"host:port"`` of process 0, reachable from every process.
      num_processes: how many processes take part.
      process_id: this process's number, ``0, ..., num_processes - 1``.
      timeout: seconds to wait for every process (default 60, or
        ``JAXOPT_LAB_INIT_TIMEOUT``).
      local_device_ids: this process's devices (e.g. one GPU each), as JAX takes them.

    Raises:
      TypeError, ValueError: naming the argument, for a bad one.
      RuntimeError: a process did not arrive in time (naming it).
    """
    if _initialized():
        return
    env = os.environ
    unset = coordinator_address is None and num_processes is None and process_id is None
    if unset and COORDINATOR in env:
        coordinator_address = env[COORDINATOR]
        num_processes = int(env.get(NUM_PROCESSES, "1"))
        process_id = int(env.get(PROCESS_ID, "0"))
    if timeout is None:
        timeout = float(env.get(INIT_TIMEOUT, "60"))
    _validation.check_positive("timeout", timeout, "Pass the seconds to wait, e.g. 60.", "60")
    if coordinator_address is None:  # a cluster: JAX reads its environment
        if num_processes is not None or process_id is not None:
            raise ValueError(
                "`coordinator_address` is None but `num_processes`/`process_id` are given; "
                "pass all three (e.g. '10.0.0.1:12345', 2, 0), or none on a cluster."
            )
        jax.distributed.initialize(
            initialization_timeout=math.ceil(timeout),
            heartbeat_timeout_seconds=max(10, math.ceil(timeout)),
            local_device_ids=local_device_ids,
        )
        return
    if (
        not isinstance(coordinator_address, str)
        or not coordinator_address.rpartition(":")[2].isdigit()
    ):
        raise ValueError(
            f"`coordinator_address` must be 'host:port', got {coordinator_address!r}; e.g. "
            f"'127.0.0.1:{free_port()}'."
        )
    num_processes = _validation.check_count(
        num_processes, "num_processes", fix="Pass how many processes take part, e.g. 2."
    )
    process_id = _validation.check_count(
        process_id,
        "process_id",
        minimum=0,
        maximum=num_processes - 1,
        fix=f"Number the processes 0, ..., {num_processes - 1}.",
    )
    if num_processes == 1:
        return
    _rendezvous.meet(coordinator_address, num_processes, process_id, timeout)
    jax.distributed.initialize(
        coordinator_address,
        num_processes,
        process_id,
        local_device_ids=local_device_ids,
        initialization_timeout=math.ceil(timeout),
        heartbeat_timeout_seconds=max(10, math.ceil(timeout)),
    )


def launch(
    command: Sequence[str],
    num_processes: int,
    *,
    devices_per_process: int | None = None,
    platform: str | None = "cpu",
    timeout: float = 60.0,
    wall_timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike | None = None,
    capture_output: bool = False,
) -> list[subprocess.CompletedProcess]:
    """Starts ``num_processes`` copies of ``command`` on this machine, as one JAX job.

    Each copy gets a process id and the coordinator ``127.0.0.1:<free port>`` through
    the environment, so a program that calls :func:`initialize` with no arguments joins
    the job. When one copy fails, the others are stopped (after ``timeout`` seconds to
    finish on their own); nothing is left running.

    Args:
      command: the program and its arguments, e.g. ``[sys.executable, "train.py"]``.
      num_processes: how many processes, ``>= 1``.
      devices_per_process: CPU devices in each process (``JAX_NUM_CPU_DEVICES``);
        ``None`` leaves JAX's default.
      platform: ``JAX_PLATFORMS`` for the copies (``"cpu"`` by default, so that copies
        do not compete for one GPU); ``None`` leaves it as it is.
      timeout: seconds the copies wait for each other when starting (and for the
        others after one failed).
      wall_timeout: seconds after which every copy is killed (``TimeoutError``).
      env: extra environment variables for every copy.
      cwd: the copies' working directory.
      capture_output: keep each copy's stdout and stderr (text) in the result;
        otherwise process 0 writes to this terminal and the others' output is shown
        only when they fail.

    Returns:
      One ``subprocess.CompletedProcess`` per copy, in process order.

    Raises:
      TimeoutError: ``wall_timeout`` passed (every copy was killed).
    """
    if isinstance(command, str) or not command or not all(isinstance(c, str) for c in command):
        raise TypeError(
            f"`command` must be a non-empty list of strings, got {command!r}; e.g. "
            "[sys.executable, 'train.py']."
        )
    num_processes = _validation.check_count(num_processes, "num_processes", fix="e.g. 2.")
    if devices_per_process is not None:
        devices_per_process = _validation.check_count(
            devices_per_process, "devices_per_process", fix="e.g. 2, or None."
        )
    _validation.check_positive("timeout", timeout, "Pass the seconds to wait, e.g. 60.", "60")
    port = free_port()
    logs = []
    procs = []
    base = dict(os.environ)
    base.update(env or {})
    if platform is not None:
        base["JAX_PLATFORMS"] = platform
    if devices_per_process is not None:
        base["JAX_NUM_CPU_DEVICES"] = str(devices_per_process)
    try:
        for i in range(num_processes):
            child = dict(base)
            child.update(
                {
                    COORDINATOR: f"127.0.0.1:{port}",
                    NUM_PROCESSES: str(num_processes),
                    PROCESS_ID: str(i),
                    INIT_TIMEOUT: str(timeout),
                }
            )
            out = err = None
            if capture_output or i > 0:
                out = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed below)
                err = tempfile.TemporaryFile("w+")  # noqa: SIM115
            logs.append((out, err))
            procs.append(
                subprocess.Popen(
                    list(command),
                    env=child,
                    cwd=cwd,
                    stdout=out,
                    stderr=err,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        _wait(procs, timeout, wall_timeout)
    finally:
        for p in procs:
            if p.poll() is None:
                _kill(p)
    results = []
    for i, (p, (out, err)) in enumerate(zip(procs, logs, strict=True)):
        text = ["", ""]
        for j, f in enumerate((out, err)):
            if f is not None:
                f.seek(0)
                text[j] = f.read()
                f.close()
        if not capture_output and i > 0 and p.returncode != 0:
            sys.stderr.write(f"--- process {i} of {num_processes} (exit {p.returncode}) ---\n")
            sys.stderr.write(text[1][-4000:])
        results.append(
            subprocess.CompletedProcess(
                p.args,
                p.returncode,
                text[0] if capture_output else None,
                text[1] if capture_output else None,
            )
        )
    return results


def _kill(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, 9)
    except (ProcessLookupError, PermissionError):
        p.kill()
    p.wait()


def _wait(procs: list[subprocess.Popen], grace: float, wall_timeout: float | None) -> None:
    start = time.monotonic()
    failed_at = None
    while [p.poll() for p in procs].count(None):  # polls every process
        now = time.monotonic()
        if wall_timeout is not None and now - start > wall_timeout:
            for p in procs:
                if p.poll() is None:
                    _kill(p)
            raise TimeoutError(
                f"jaxopt_lab.distributed.launch: the {len(procs)} processes ran past "
                f"`wall_timeout`={wall_timeout:g} s and were killed."
            )
        if failed_at is None and any(p.returncode not in (None, 0) for p in procs):
            failed_at = now
        if failed_at is not None and now - failed_at > grace:
            for p in procs:
                if p.poll() is None:
                    _kill(p)
        time.sleep(0.05)


def shard_data(local_data: Any, *, devices: Sequence[jax.Device] | None = None) -> Any:
    """One global dataset from each process's part, sharded over every device.

    Each process passes only the examples it loaded (the same number in every process,
    divisible by its number of devices); the result's leading axis is their
    concatenation in process order, split over a 1-D ``"data"`` mesh of ``devices``
    (default ``jax.devices()``, every process's). Pass it as ``data`` to
    :func:`jaxopt_lab.curvature.hvp_operator`, :func:`~jaxopt_lab.curvature.eigenvalues`
    and the other curvature functions: each process then computes on its own examples.

    Raises:
      ValueError: naming ``local_data``, when its leading axis does not split evenly.
    """
    from jax.experimental import multihost_utils

    n = _validation.leading_axis("local_data", local_data)
    devices = list(jax.devices() if devices is None else devices)
    local = [d for d in devices if d.process_index == jax.process_index()]
    if n % max(len(local), 1):
        raise ValueError(
            f"`local_data` has {n} examples, not a multiple of this process's "
            f"{len(local)} devices; drop {n % len(local)} examples (or load a multiple)."
        )
    counts = np.asarray(multihost_utils.process_allgather(np.int32(n)))
    if (counts != n).any():
        raise ValueError(
            f"`local_data` has a different number of examples in different processes "
            f"({counts.tolist()}); load the same number in each."
        )
    sharding = NamedSharding(Mesh(np.array(devices), ("data",)), P("data"))
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), local_data
    )
