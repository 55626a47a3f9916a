"""What the library does across processes: fetch, agree, broadcast, wait (internal).

Every function here is a collective when ``jax.process_count() > 1``: every process
must call it, in the same order. With one process each is cheap and local.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np


def multiprocess() -> bool:
    return jax.process_count() > 1


def main_process() -> bool:
    """Whether this process prints, draws progress bars and writes shared files."""
    return jax.process_index() == 0


def fetch(tree: Any) -> Any:
    """``jax.device_get``, also for arrays that span other processes' devices.

    A global array (sharded over devices of several processes) is gathered whole onto
    every process (``multihost_utils.process_allgather``: a copy, bit for bit); what is
    already addressable is fetched as usual.
    """
    leaves, treedef = jax.tree.flatten(tree)
    spread = [
        i
        for i, x in enumerate(leaves)
        if isinstance(x, jax.Array) and not x.is_fully_addressable and not x.is_fully_replicated
    ]
    if spread:
        from jax.experimental import multihost_utils

        raw = [leaves[i] for i in spread]
        keys = [jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) for x in raw]
        raw = [jax.random.key_data(x) if k else x for x, k in zip(raw, keys, strict=True)]
        gathered = multihost_utils.process_allgather(raw, tiled=True)
        for i, g, k in zip(spread, gathered, keys, strict=True):
            g = np.asarray(g)
            leaves[i] = jax.random.wrap_key_data(g, impl=jax.random.key_impl(leaves[i])) if k else g
    out = jax.device_get(leaves)
    return jax.tree.unflatten(treedef, out)


def _digest(value: Any) -> np.ndarray:
    """Eight bytes of SHA-256 of ``value``'s repr (numbers and strings), as two int32."""
    h = hashlib.sha256(repr(value).encode()).digest()[:8]
    return np.frombuffer(h, dtype=np.int32).copy()


def agree(what: str, fields: Mapping[str, Any]) -> None:
    """Raises, on every process, if any of ``fields`` differs between processes.

    ``fields`` maps an argument's name to a value (or a hash of it) that must be the
    same on every process: a different grid in one process would otherwise train other
    runs than the others expect, or hang in a collective.

    Raises:
      ValueError: naming the arguments that differ and the processes that differ.
    """
    if not multiprocess():
        return
    from jax.experimental import multihost_utils

    names = list(fields)
    mine = np.stack([_digest(fields[k]) for k in names]) if names else np.zeros((0, 2), np.int32)
    every = np.asarray(multihost_utils.process_allgather(mine))  # (processes, fields, 2)
    differ = [k for i, k in enumerate(names) if not (every[:, i] == every[0, i]).all()]
    if differ:
        which = sorted(
            {
                p
                for p in range(every.shape[0])
                for i, k in enumerate(names)
                if k in differ and not (every[p, i] == every[0, i]).all()
            }
        )
        raise ValueError(
            f"{what} was called with different arguments in different processes: "
            f"{', '.join(f'`{k}`' for k in differ)} differ{'s' if len(differ) == 1 else ''} "
            f"between process 0 and process{'es' if len(which) > 1 else ''} "
            f"{', '.join(map(str, which))}. Every process must pass the same arguments "
            "(each may load only its part of the data, not another grid)."
        )


def smallest(value: int) -> int:
    """The smallest of every process's ``value``."""
    if not multiprocess():
        return value
    from jax.experimental import multihost_utils

    return int(np.asarray(multihost_utils.process_allgather(np.int32(value))).min())


def broadcast_text(text: str | None) -> str:
    """Process 0's ``text``, on every process (others pass anything)."""
    if not multiprocess():
        return text or ""
    from jax.experimental import multihost_utils

    raw = (text or "").encode()
    size = int(np.asarray(multihost_utils.broadcast_one_to_all(np.int32(len(raw)))))
    buf = np.zeros(max(size, 1), np.uint8)
    if main_process():
        buf[:size] = np.frombuffer(raw, np.uint8)
    buf = np.asarray(multihost_utils.broadcast_one_to_all(buf))
    return bytes(buf[:size]).decode()


def wait_for_all(name: str) -> None:
    """A barrier: returns once every process has reached it."""
    if multiprocess():
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def run_on_main(fn, *args: Any) -> Any:
    """Runs ``fn`` on process 0 only; an exception there is raised on every process.

    Returns ``fn``'s result on process 0 and ``None`` elsewhere.
    """
    if not multiprocess():
        return fn(*args)
    result, error = None, None
    if main_process():
        try:
            result = fn(*args)
        except (ValueError, TypeError, OSError, RuntimeError) as e:
            error = e
    message = broadcast_text("" if error is None else f"{type(error).__name__}\0{error}")
    if error is not None:
        raise error
    if message:
        kind, _, text = message.partition("\0")
        cls = {"ValueError": ValueError, "TypeError": TypeError, "OSError": OSError}
        raise cls.get(kind, RuntimeError)(f"(on process 0) {text}")
    return result
