"""What the library does across processes: fetch, agree, broadcast, wait (internal).

Every function here is a collective when ``jax.process_count() > 1``: every process
must call it, in the same order. With one process each is cheap and local.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P


def multiprocess() -> bool:
    return jax.process_count() > 1


def main_process() -> bool:
    """Whether this process prints, draws progress bars and writes shared files."""
    return jax.process_index() == 0


def fetch(tree: Any) -> Any:
    """``jax.device_get``, also for arrays that span other processes' devices.

    Global arrays (sharded over devices of several processes) are gathered whole onto
    every process by one compiled copy per mesh (a copy, bit for bit: replicated output
    shardings), then fetched from this process's replica; what is already addressable
    is fetched as usual.
    """
    leaves, treedef = jax.tree.flatten(tree)
    spread: dict[Any, list[int]] = {}
    for i, x in enumerate(leaves):
        if isinstance(x, jax.Array) and not x.is_fully_addressable and not x.is_fully_replicated:
            mesh = getattr(x.sharding, "mesh", None)
            spread.setdefault(mesh, []).append(i)
    for mesh, where in spread.items():
        group = [leaves[i] for i in where]
        if mesh is None:  # not a NamedSharding: JAX's own gather, leaf by leaf
            from jax.experimental import multihost_utils

            gathered = multihost_utils.process_allgather(group, tiled=True)
        else:
            gathered = _replicate(mesh)(group)
        for i, g in zip(where, gathered, strict=True):
            leaves[i] = g
    return jax.tree.unflatten(treedef, jax.device_get(leaves))


@functools.lru_cache(maxsize=16)
def _replicate(mesh: Mesh) -> Any:
    """A compiled identity whose outputs are replicated on every device of ``mesh``."""
    return jax.jit(lambda tree: tree, out_shardings=NamedSharding(mesh, P()))


def place(host: Any, sharding: Any) -> Any:
    """``jax.device_put(host, sharding)``, without a cross-process check per call.

    Every process holds the same ``host`` values (the caller's promise, checked once per
    call of the library by :func:`agree`); each puts only its own devices' shards.
    """
    if sharding is None or sharding.is_fully_addressable:
        return jax.device_put(host, sharding)

    def one(x):
        if jax.dtypes.issubdtype(getattr(x, "dtype", np.float32), jax.dtypes.prng_key):
            words = one(jax.random.key_data(x))
            return jax.random.wrap_key_data(words, impl=jax.random.key_impl(x))
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(one, host)


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


def everywhere(flags: list[bool]) -> np.ndarray:
    """For each flag, whether it is true in every process."""
    if not multiprocess():
        return np.asarray(flags, bool)
    from jax.experimental import multihost_utils

    every = multihost_utils.process_allgather(np.asarray(flags, np.int32))
    return np.asarray(every).all(axis=0)


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
