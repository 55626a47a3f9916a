"""Atomic npz + json checkpoints for ``train`` and ``sweep``.

Every file is written under a temporary name in the same directory and renamed into
place (``os.replace`` is atomic), so a process killed at any moment leaves either the
previous file or the new one, never half of one. ``meta.json`` holds a fingerprint of the
arguments; resuming with different arguments is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import tempfile
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

META = "meta.json"


def _host(leaf: Any) -> np.ndarray:
    if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        leaf = jax.random.key_data(leaf)
    return np.asarray(leaf)


def describe(tree: Any, *, with_hash: bool = True) -> dict[str, Any]:
    """A JSON-able fingerprint of a pytree: structure, shapes, dtypes, content hash."""
    leaves, treedef = jax.tree.flatten(tree)
    arrays = [_host(x) for x in leaves]
    out = {
        "treedef": str(treedef),
        "shapes": [list(a.shape) for a in arrays],
        "dtypes": [str(a.dtype) for a in arrays],
    }
    if with_hash:
        h = hashlib.sha256()
        for a in arrays:
            h.update(np.ascontiguousarray(a).tobytes())
        out["sha256"] = h.hexdigest()
    return out


def _atomic_write(path: pathlib.Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save_arrays(path: pathlib.Path, arrays: dict[str, Any]) -> None:
    """Writes ``arrays`` (name -> array) to ``path`` (.npz) atomically."""
    host = {k: _host(v) for k, v in arrays.items()}
    _atomic_write(path, lambda f: np.savez(f, **host))


def load_arrays(path: pathlib.Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def tree_to_arrays(prefix: str, tree: Any) -> dict[str, np.ndarray]:
    return {f"{prefix}{i:05d}": _host(x) for i, x in enumerate(jax.tree.leaves(tree))}


def tree_from_arrays(prefix: str, arrays: dict[str, np.ndarray], like: Any) -> Any:
    """The pytree with ``like``'s structure whose leaves are ``arrays[prefix...]``."""
    leaves, treedef = jax.tree.flatten(like)
    out = []
    for i, ref in enumerate(leaves):
        a = arrays[f"{prefix}{i:05d}"]
        if jax.dtypes.issubdtype(ref.dtype, jax.dtypes.prng_key):
            a = jax.random.wrap_key_data(a, impl=jax.random.key_impl(ref))
        elif a.shape != ref.shape:
            raise ValueError(f"checkpoint leaf {prefix}{i} has shape {a.shape}, want {ref.shape}")
        out.append(a)
    return jax.tree.unflatten(treedef, out)


def open_directory(directory: str | os.PathLike, meta: dict[str, Any]) -> pathlib.Path:
    """Creates ``directory`` with ``meta.json``, or checks that the saved meta matches.

    Raises:
      ValueError: naming ``checkpoint_dir`` and the arguments that differ.
    """
    path = pathlib.Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    meta = json.loads(json.dumps(meta))  # normalise tuples to lists etc.
    meta_path = path / META
    if meta_path.exists():
        saved = json.loads(meta_path.read_text())
        if saved != meta:
            keys = sorted(k for k in set(saved) | set(meta) if saved.get(k) != meta.get(k))
            raise ValueError(
                f"`checkpoint_dir` {str(path)!r} holds a checkpoint written with different "
                f"arguments (they differ in: {', '.join(keys)}). Call again with the same "
                "arguments to resume, or pass a new (or empty) `checkpoint_dir`."
            )
    else:
        text = json.dumps(meta, indent=1, sort_keys=True).encode()
        _atomic_write(meta_path, lambda f: f.write(text))
    return path


def function_name(fn: Any) -> str:
    """A stable name for a function argument (module and qualified name)."""
    fn = getattr(fn, "func", fn)  # functools.partial
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"


def probe(optimizer: Any, params: Any) -> Any:
    """One update from all-ones gradients: tells optimizers apart for checkpoints."""
    try:
        grads = jax.tree.map(jnp.ones_like, params)
        return optimizer.update(grads, optimizer.init(params), params)[0]
    except Exception:  # an optimizer that needs extra arguments: not fingerprinted
        return None


def fingerprint(
    kind: str,
    *,
    functions: tuple,
    model_kind: str,
    spec: Any,
    monitor_size: int,
    data: Any,
    eval_data: Any,
    start: tuple[Any, Any],
    optimizer: Any,
    **extra: Any,
) -> dict[str, Any]:
    """What a checkpoint must agree on before it is resumed (``open_directory`` checks it).

    Functions count by name, the optimizer by one probe update at the starting
    parameters, data and starting point by content hash.
    """
    return {
        "kind": kind,
        "functions": [function_name(f) for f in functions],
        "model": model_kind,
        "spec": [
            spec.steps,
            spec.batch_size,
            spec.log_every,
            spec.chunk_size,
            monitor_size,
            spec.divergence_factor,
        ],
        "callbacks": [[function_name(type(cb)), cb.every] for cb in spec.callbacks],
        "schedule": None if spec.schedule is None else function_name(spec.schedule),
        "data": describe(data),
        "eval_data": None if eval_data is None else describe(eval_data),
        "start": describe(start),
        "optimizer": describe(probe(optimizer, start[0])),
        **extra,
    }
