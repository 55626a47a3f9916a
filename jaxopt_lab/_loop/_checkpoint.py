"""Checkpoints of ``train`` and ``sweep`` on orbax-checkpoint, that know what they hold.

A checkpoint directory holds

- ``meta.json``: what the runs compute (:func:`fingerprint`: the lowered text of the
  training programs, the grid, the seeds, the data's content hash, the shapes) and, for
  every saved item, the SHA-256 of each of its files and of its arrays;
- one orbax checkpoint per item (a chunk of sweep runs, or the state of a training run),
  written by ``orbax.checkpoint`` under a temporary name and renamed when complete;
- ``.lock``: an OS file lock held by the one process writing the directory.

A directory whose metadata is missing or unreadable but that holds items is refused (its
items cannot be trusted); a directory written by another program is refused naming what
differs; an item that is missing, unreadable or whose arrays do not match their checksum
is named in a warning and recomputed, never loaded. The metadata is written atomically
(``os.replace``) after each item, so a process killed at any moment leaves a directory
that resumes: at worst the item being written is computed again.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import pathlib
import shutil
import tempfile
import threading
import time
import warnings
from typing import Any

import jax
import numpy as np

from jaxopt_lab.distributed import _collectives as collectives

META = "meta.json"
LOCK = ".lock"
FORMAT = "jaxopt_lab checkpoint 3 (orbax)"
_POLL_SECONDS = 0.05


def _host(leaf: Any) -> np.ndarray:
    if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        leaf = jax.random.key_data(leaf)
    return np.asarray(leaf)


def content_hash(arrays: Any) -> str:
    """SHA-256 of a pytree's leaves: their dtypes, shapes and bytes, in tree order."""
    h = hashlib.sha256()
    for a in map(_host, jax.tree.leaves(arrays)):
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


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
        out["sha256"] = content_hash(arrays)
    return out


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


def _atomic_write_text(path: pathlib.Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def check_directory(directory: Any) -> pathlib.Path:
    """``directory`` as a path that is (or can be made) a writable directory.

    Called before any computing, so a bad ``checkpoint_dir`` costs nothing.

    Raises:
      TypeError, ValueError: naming ``checkpoint_dir``, the path and the fix.
    """
    if not isinstance(directory, str | os.PathLike):
        raise TypeError(f"`checkpoint_dir` must be a path (str or os.PathLike), got {directory!r}.")
    path = pathlib.Path(directory).expanduser().absolute()  # orbax writes absolute paths only
    if path.exists() and not path.is_dir():
        raise ValueError(
            f"`checkpoint_dir` {str(path)!r} is a file, not a directory; pass a directory "
            "(new or one this function wrote)."
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(
            f"`checkpoint_dir` {str(path)!r} cannot be created ({e.strerror}); pass a "
            "directory you can write to."
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(
            f"`checkpoint_dir` {str(path)!r} is not writable; pass a directory you can write to."
        )
    return path


def _normalise(meta: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(meta))  # tuples to lists etc.


def _differences(saved: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    return sorted(k for k in set(saved) | set(meta) if saved.get(k) != meta.get(k))


def _refusal(path: pathlib.Path, keys: list[str], by_other: str = "") -> ValueError:
    what = "a different training program" if "program" in keys else "different arguments"
    return ValueError(
        f"`checkpoint_dir` {str(path)!r} {by_other}was written by {what}: they differ in: "
        f"{', '.join(keys)}. Call again with the same arguments to resume, or pass a new "
        "(or empty) `checkpoint_dir`."
    )


class Directory:
    """An open checkpoint directory: checked, locked, its metadata agreed.

    Use as a context manager; the lock is released on exit (and by the OS if the process
    dies). ``open`` waits while another process with the same fingerprint writes the
    directory (then resumes from what it saved) and refuses at once one with another.
    """

    def __init__(self, path: pathlib.Path, meta: dict[str, Any], lock: Any):
        self.path, self._lock = path, lock
        self._meta = meta
        self.items: dict[str, str] = dict(meta.get("items", {}))
        self._guard = threading.Lock()  # the items and meta.json, shared with the writer
        self._writer = concurrent.futures.ThreadPoolExecutor(1, "jaxopt_lab-checkpoint")
        self._pending: list[concurrent.futures.Future] = []

    @classmethod
    def open(cls, directory: Any, fingerprint: dict[str, Any]) -> Directory:
        """Opens ``directory`` for this program; with several processes, all together.

        With several processes (``jax.distributed``), process 0 takes the lock and checks
        the fingerprint for the whole job; a refusal there is raised on every process.
        """
        path = check_directory(directory)
        fingerprint = _normalise(fingerprint)
        if not collectives.multiprocess():
            lock, meta = _claim(path, fingerprint)
            return cls(path, meta, lock)
        claimed = collectives.run_on_main(_claim, path, fingerprint)
        if claimed is not None:
            return cls(path, claimed[1], claimed[0])
        meta = _read_meta(path)  # process 0 has written or checked it by now
        if not isinstance(meta, dict):
            raise ValueError(f"{META} in {str(path)!r} {meta or 'is missing'} on this process")
        return cls(path, meta, None)

    def __enter__(self) -> Directory:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Waits for the saves in flight, then releases the lock."""
        try:
            self.wait()
        finally:
            self._writer.shutdown(wait=True)
            if self._lock is not None and not self._lock.closed:
                fcntl.flock(self._lock, fcntl.LOCK_UN)
                self._lock.close()

    def wait(self) -> None:
        """Waits for the saves in flight; raises the first error one of them met."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def _write_meta(self) -> None:
        with self._guard:
            self._meta = {**self._meta, "items": dict(sorted(self.items.items()))}
            text = json.dumps(self._meta, indent=1, sort_keys=True)
            _atomic_write_text(self.path / META, text)

    def save(self, name: str, arrays: dict[str, np.ndarray], *, replaces: str = "") -> None:
        """Saves ``arrays`` (name -> array) as item ``name`` and records its checksum.

        The writing happens in a thread of its own, while the caller goes on training;
        saves are written in order, each recorded in ``meta.json`` only once complete,
        then the item ``replaces`` (if any) is removed. :meth:`wait` (and :meth:`close`)
        wait for them.
        """
        arrays = {k: np.array(_host(v)) for k, v in arrays.items()}  # copies, kept
        for future in self._pending:
            if future.done():
                future.result()  # a failed save's error, now rather than at the end
        self._pending = [f for f in self._pending if not f.done()]
        self._pending.append(self._writer.submit(self._save, name, arrays, replaces))

    def _save(self, name: str, arrays: dict[str, np.ndarray], replaces: str) -> None:
        target = self.path / name
        if target.exists():  # an unrecorded leftover, or an item being replaced
            shutil.rmtree(target)
        _checkpointer().save(target, arrays)
        record = {"arrays": content_hash(arrays), "files": _file_hashes(target)}
        with self._guard:
            self.items[name] = record
        self._write_meta()
        if replaces:
            self.discard(replaces)

    def load(self, name: str) -> dict[str, np.ndarray] | None:
        """Item ``name``'s arrays, or None when it was never saved or cannot be trusted.

        A recorded item that is missing, unreadable or altered is named in a warning,
        removed, and left to be computed again.
        """
        target = self.path / name
        record = self.items.get(name)
        if record is None:
            return None
        problem = None
        if not target.is_dir():
            problem = "is missing"
        elif (files := _file_hashes(target)) != record["files"]:
            # checked before orbax reads anything: a damaged file is never handed to it
            changed = sorted(
                set(files) ^ set(record["files"])
                | {f for f in set(files) & set(record["files"]) if files[f] != record["files"][f]}
            )
            problem = f"has missing or altered files ({', '.join(changed[:3])})"
        else:
            try:
                arrays = _restore(target)
                arrays = {k: np.asarray(v) for k, v in arrays.items()}
            except Exception as e:  # orbax/tensorstore raise many kinds on damaged files
                problem = f"cannot be read ({type(e).__name__}: {str(e)[:200]})"
            else:
                if content_hash(arrays) != record["arrays"]:
                    problem = "does not match its checksum in meta.json (altered)"
        if problem is None:
            return arrays
        warnings.warn(
            f"checkpoint item {str(target)!r} {problem}; it is computed again.",
            RuntimeWarning,
            stacklevel=3,
        )
        self.discard(name)
        return None

    def save_collective(
        self, name: str, arrays: dict[str, Any], on_host: dict[str, np.ndarray], **record: Any
    ) -> None:
        """Saves item ``name`` from every process at once (a collective; waits for it).

        ``arrays`` may hold arrays that span processes: orbax writes each process's
        shards from that process. ``on_host`` is the same item gathered on the host; its
        checksum is what :meth:`load` checks. Process 0 records the item in ``meta.json``.
        """
        self.wait()
        target = self.path / name
        if collectives.main_process() and target.exists():
            shutil.rmtree(target)
        collectives.wait_for_all(f"jaxopt_lab checkpoint {name} clear")
        _checkpointer().save(target, arrays)
        if collectives.main_process():
            entry = {"arrays": content_hash(on_host), "files": _file_hashes(target), **record}
            with self._guard:
                self.items[name] = entry
            self._write_meta()

    def discard(self, name: str) -> None:
        """Forgets item ``name`` and removes its files (process 0 only, with several)."""
        with self._guard:
            known = self.items.pop(name, None) is not None
        if not collectives.main_process():
            return
        if known:
            self._write_meta()
        shutil.rmtree(self.path / name, ignore_errors=True)


def _claim(path: pathlib.Path, fingerprint: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Takes the lock of ``path`` and agrees on its metadata: ``(lock, meta)``."""
    lock = open(path / LOCK, "a+")  # noqa: SIM115 (held until close)
    try:
        _acquire(lock, path, fingerprint)
        meta = _agree(path, fingerprint)
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        _remove_leftovers(path, meta)
    except BaseException:
        lock.close()
        raise
    return lock, meta


def read_newest(directory: Any, prefix: str) -> tuple[str, dict[str, np.ndarray]] | None:
    """The newest recorded item named ``prefix...`` of ``directory`` and its arrays, read
    without the lock and without changing anything; None when there is none.

    Raises:
      ValueError: the metadata cannot be read, or the item is missing or altered (its
        files or arrays differ from the checksums in ``meta.json``).
    """
    path = pathlib.Path(directory).expanduser().absolute()
    meta = _read_meta(path)
    if not isinstance(meta, dict):
        raise ValueError(f"{META} in {str(path)!r} {meta or 'is missing'}")
    names = sorted(n for n in meta.get("items", {}) if n.startswith(prefix))
    if not names:
        return None
    name, record = names[-1], meta["items"][names[-1]]
    target = path / name
    if not target.is_dir() or _file_hashes(target) != record["files"]:
        raise ValueError(f"checkpoint item {str(target)!r} is missing or has altered files")
    arrays = {k: np.asarray(v) for k, v in _restore(target).items()}
    if content_hash(arrays) != record["arrays"]:
        raise ValueError(f"checkpoint item {str(target)!r} does not match its checksum")
    return name, arrays


def recorded_items(directory: Any) -> int:
    """How many items ``directory``'s metadata records (-1 if it cannot be read); cheap.

    A hint only (what to prepare while the fingerprint is taken); nothing is trusted on it.
    """
    saved = _read_meta(pathlib.Path(directory))
    return len(saved.get("items", {})) if isinstance(saved, dict) else -1


def preload() -> None:
    """Imports orbax-checkpoint in a thread (it takes a while), for the first save or load."""
    threading.Thread(target=_checkpointer, daemon=True, name="jaxopt_lab-orbax").start()


def _file_hashes(item: pathlib.Path) -> dict[str, str]:
    """SHA-256 of every file of an orbax item, by path relative to the item."""
    out = {}
    for path in sorted(p for p in item.rglob("*") if p.is_file()):
        out[str(path.relative_to(item))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _restore(target: pathlib.Path) -> dict[str, Any]:
    """An item's arrays as NumPy arrays on this host, whoever wrote them (any layout)."""
    import orbax.checkpoint as ocp

    checkpointer = _checkpointer()
    tree = checkpointer.metadata(target)
    tree = getattr(tree, "item_metadata", tree)
    tree = getattr(tree, "tree", tree)
    args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), dict(tree))
    return checkpointer.restore(target, restore_args=args)


def _checkpointer() -> Any:
    import orbax.checkpoint as ocp  # imported on first use: it takes a second

    logging.getLogger("absl").setLevel(logging.ERROR)  # orbax logs every save at INFO
    return ocp.PyTreeCheckpointer()


def _read_meta(path: pathlib.Path) -> dict[str, Any] | str | None:
    """The saved metadata; None if there is none; a reason string if unreadable."""
    try:
        text = (path / META).read_text()
    except FileNotFoundError:
        return None
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as e:
        return f"is not valid JSON ({e.msg} at line {e.lineno})"
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        return "was not written by this version of jaxopt_lab"
    return meta


def _acquire(lock: Any, path: pathlib.Path, fingerprint: dict[str, Any]) -> None:
    """Takes the directory's lock; while another process holds it, checks its metadata.

    A holder with another fingerprint is refused at once; with the same one, this waits
    (the holder's items are then loaded, not computed again).
    """
    warned = False
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
        saved = _read_meta(path)
        if isinstance(saved, dict):
            keys = _differences(saved["fingerprint"], fingerprint)
            if keys:
                holder = (path / LOCK).read_text().strip() or "?"
                raise _refusal(
                    path, keys, f"is being written by another process (pid {holder}) and "
                )
            if not warned:
                warnings.warn(
                    f"`checkpoint_dir` {str(path)!r} is being written by another process with "
                    "the same arguments; waiting for it, then resuming from what it saved.",
                    RuntimeWarning,
                    stacklevel=4,
                )
                warned = True
        time.sleep(_POLL_SECONDS)


def _items_on_disk(path: pathlib.Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.name not in (META, LOCK))


def _agree(path: pathlib.Path, fingerprint: dict[str, Any]) -> dict[str, Any]:
    """The directory's metadata after checking it against ``fingerprint`` (or writing it)."""
    saved = _read_meta(path)
    if isinstance(saved, str) or saved is None:
        leftovers = [n for n in _items_on_disk(path) if not n.startswith(".")]
        if leftovers or isinstance(saved, str):
            reason = "no meta.json" if saved is None else f"a meta.json that {saved}"
            raise ValueError(
                f"`checkpoint_dir` {str(path)!r} holds {', '.join(leftovers[:3]) or 'files'}"
                f"{' ...' if len(leftovers) > 3 else ''} but {reason}, so what they hold "
                "cannot be told: they are not loaded. Move them away (or delete them), or "
                "pass a new `checkpoint_dir`."
            )
        meta = {"format": FORMAT, "fingerprint": fingerprint, "items": {}}
        _atomic_write_text(path / META, json.dumps(meta, indent=1, sort_keys=True))
        return meta
    keys = _differences(saved["fingerprint"], fingerprint)
    if keys:
        raise _refusal(path, keys)
    return saved


def _remove_leftovers(path: pathlib.Path, meta: dict[str, Any]) -> None:
    """Removes what a killed writer left: temporary files and unrecorded items."""
    recorded = set(meta.get("items", {}))
    for name in _items_on_disk(path):
        if name in recorded:
            continue
        target = path / name
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                target.unlink()


def function_name(fn: Any) -> str:
    """A stable name for a function argument (module and qualified name)."""
    fn = getattr(fn, "func", fn)  # functools.partial
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"


def fingerprint(
    kind: str,
    *,
    programs: dict[str, str],
    model_kind: str,
    spec: Any,
    monitor_size: int,
    data: Any,
    eval_data: Any,
    start: tuple[Any, Any],
    **extra: Any,
) -> dict[str, Any]:
    """What a checkpoint must agree on before it is resumed.

    ``programs`` maps a name to the SHA-256 of a lowered program's text (the training
    chunk, the optimizer's initialisation, the start's construction): every constant,
    fixed hyperparameter, schedule and loss body is spelt out there. Data and starting
    point count by content hash.
    """
    return {
        "kind": kind,
        "program": dict(sorted(programs.items())),
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
        "data": describe(data),
        "eval_data": None if eval_data is None else describe(eval_data),
        "start": describe(start),
        **extra,
    }
