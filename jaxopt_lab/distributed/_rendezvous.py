"""A rendezvous before ``jax.distributed.initialize``, so a missing process is an error.

JAX's coordination service aborts the whole process (a C++ ``LOG(FATAL)``, no Python
exception) when a peer has not registered within the initialization timeout. Before
handing over to it, the processes meet on the coordinator's port over plain TCP: process
0 listens, the others connect and say who they are; process 0 answers ``go`` once every
process has arrived (or names the ones that did not, to everyone, and raises). A
process that cannot reach the coordinator, one that arrives twice, or one that disagrees
on the number of processes gets a Python ``RuntimeError`` within the timeout instead.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time

_HELLO = "jaxopt_lab rendezvous 1"


def _send(sock: socket.socket, message: dict) -> None:
    sock.sendall((json.dumps(message) + "\n").encode())


def _receive(sock: socket.socket, deadline: float) -> dict:
    data = b""
    while not data.endswith(b"\n"):
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("the other side closed the connection")
        data += chunk
    return json.loads(data)


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def meet(address: str, num_processes: int, process_id: int, timeout: float) -> None:
    """Returns once every one of ``num_processes`` processes has reached ``address``.

    Raises:
      RuntimeError: naming the processes that did not arrive within ``timeout`` seconds
        (on every process that did), or the coordinator that could not be reached.
    """
    if num_processes == 1:
        return
    if process_id == 0:
        _host(address, num_processes, timeout)
    else:
        _join(address, num_processes, process_id, timeout)


def _host(address: str, num_processes: int, timeout: float) -> None:
    host, port = _split(address)
    deadline = time.monotonic() + timeout
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        server.bind(("" if host in ("0.0.0.0", "") else host, port))
    except OSError as e:
        server.close()
        raise RuntimeError(
            f"process 0 cannot listen on the coordinator address {address!r} ({e.strerror}); "
            "pass a free port (jaxopt_lab.distributed.free_port())."
        ) from None
    server.listen(num_processes)
    arrived: dict[int, socket.socket] = {}
    problems: list[str] = []
    try:
        while len(arrived) < num_processes - 1 and time.monotonic() < deadline:
            server.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                conn, _ = server.accept()
            except TimeoutError:
                break
            try:
                hello = _receive(conn, deadline)
            except (OSError, ValueError):
                conn.close()
                continue
            pid, count = hello.get("process_id"), hello.get("num_processes")
            if hello.get("hello") != _HELLO:
                conn.close()
                continue
            if count != num_processes:
                problems.append(
                    f"process {pid} was started with num_processes={count}, process 0 with "
                    f"{num_processes}"
                )
            elif not isinstance(pid, int) or not 0 < pid < num_processes or pid in arrived:
                problems.append(f"a process arrived with process_id={pid!r} (taken or invalid)")
            arrived.setdefault(pid, conn) if isinstance(pid, int) else conn.close()
            if problems:
                break
        missing = [i for i in range(1, num_processes) if i not in arrived]
        if missing and not problems:
            problems.append(
                f"process{'es' if len(missing) > 1 else ''} "
                f"{', '.join(map(str, missing))} of {num_processes} did not reach the "
                f"coordinator at {address} within {timeout:g} s (dead, never started, or "
                "started with another address)"
            )
        verdict = {"go": not problems, "problem": "; ".join(problems)}
        for conn in arrived.values():
            try:
                _send(conn, verdict)
                _receive(conn, time.monotonic() + 5.0)  # the worker closes first
            except (OSError, ValueError):
                pass
    finally:
        for conn in arrived.values():
            conn.close()
        server.close()
    if problems:
        raise RuntimeError(
            f"jaxopt_lab.distributed.initialize: {verdict['problem']}. Start all "
            f"{num_processes} processes with the same coordinator address and num_processes "
            "and process ids 0, ..., num_processes - 1; raise `timeout` if they start slowly."
        )


def _join(address: str, num_processes: int, process_id: int, timeout: float) -> None:
    host, port = _split(address)
    deadline = time.monotonic() + timeout
    conn = None
    while conn is None:
        try:
            conn = socket.create_connection((host, port), timeout=1.0)
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"jaxopt_lab.distributed.initialize: process {process_id} could not reach "
                    f"the coordinator (process 0) at {address} within {timeout:g} s. Start "
                    "process 0 with the same coordinator address, or raise `timeout`."
                ) from None
            time.sleep(0.1)
    try:
        hello = {"hello": _HELLO, "process_id": process_id, "num_processes": num_processes}
        _send(conn, hello)
        try:
            verdict = _receive(conn, deadline + 5.0)
        except (OSError, ValueError):
            verdict = {"go": False, "problem": "the coordinator closed the connection"}
        with contextlib.suppress(OSError):
            _send(conn, {"bye": True})
    finally:
        conn.close()
    if not verdict.get("go"):
        raise RuntimeError(
            f"jaxopt_lab.distributed.initialize (process {process_id}): {verdict['problem']}."
        )
