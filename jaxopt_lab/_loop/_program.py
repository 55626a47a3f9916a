"""Compiled programs found again by what they compute, not by the Python objects behind them.

``jax.jit`` caches a program on the identity of its static arguments: a second ``sweep``
with a new but identical ``lambda`` for ``make_optimizer`` compiles the same program again.
A :class:`Program` looks an executable up in two places:

1. by its static arguments (a :class:`Static`: plain values compared by value, functions
   and other objects by identity) and the shapes, dtypes and shardings of the others;
   this costs no tracing;
2. on a miss, it traces and lowers the function and looks the executable up by the text
   of the lowered module (every constant spelt out), so a program that computes the same
   thing is compiled once per process, whatever function object produced it.

JAX's persistent compilation cache (``jax.config.update("jax_compilation_cache_dir",
path)``, which the ``jaxopt-lab`` command turns on) extends the second level across
processes.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import threading
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

# Measured on a 2-core CPU (MLP train steps, plain and vmapped over 64 runs): LLVM
# optimisation level 1 compiles these loops 15-45% faster than the default level and runs
# them as fast (the time goes to dot products, which are library calls either way). For
# short training runs, compilation is most of the wall time.
_CPU_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}

# Run-axis widths a sweep pads its chunks to, so that grids of nearby sizes share one
# program: 1, 2, 3, 4, 6, 8, 12, 16, 24, ... (at most 1.5x the runs they hold).
_WIDTHS = sorted({1, 2, 3} | {m * 2**k for k in range(1, 40) for m in (2, 3)})

_PLAIN = (type(None), bool, int, float, str, jax.sharding.Mesh)


def padded_width(runs: int, limit: int) -> int:
    """The smallest allowed width ``>= runs``, but never above ``limit`` (>= ``runs``)."""
    width = next(w for w in _WIDTHS if w >= runs)
    return max(runs, min(width, limit))


def _by_value(a: Any) -> bool:
    if isinstance(a, _PLAIN):
        return True
    graph = getattr(type(a), "__module__", "") or ""
    return graph.startswith("flax.nnx") and type(a).__name__.endswith("GraphDef")


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, tuple):  # NamedTuples too (Spec, optax transformations)
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if dataclasses.is_dataclass(a) and getattr(type(a), "__static_fields__", False):
        return all(_same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    if _by_value(a):
        return a == b
    return a is b


def _hash(a: Any) -> int:
    if isinstance(a, tuple):
        return hash(tuple(_hash(x) for x in a))
    if dataclasses.is_dataclass(a) and getattr(type(a), "__static_fields__", False):
        return hash(tuple(_hash(getattr(a, f.name)) for f in dataclasses.fields(a)))
    if _by_value(a):
        return hash(a)
    return id(a)


class Static:
    """Named static arguments of a program, read by attribute (``static.loss_fn``).

    Compared by value for plain data (numbers, strings, meshes, NNX graph definitions,
    and tuples and static dataclasses of them), by identity otherwise: functions,
    optimizers and callbacks need not be hashable. A :class:`Program` keeps the objects
    alive while it caches them, so an identity is never reused by another object.
    """

    def __init__(self, **items: Any):
        object.__setattr__(self, "_items", items)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._items[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Static is read-only")

    def __hash__(self) -> int:
        return _hash(tuple(self._items.items()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Static) and _same(
            tuple(self._items.items()), tuple(other._items.items())
        )

    def __repr__(self) -> str:
        return f"Static({', '.join(self._items)})"


def _signature(args: Any) -> tuple:
    """Shapes, dtypes, weak types and shardings of ``args`` (concrete or abstract)."""
    leaves, treedef = jax.tree.flatten(args)
    sig = []
    for x in leaves:
        if isinstance(x, jax.ShapeDtypeStruct | jax.Array):
            sharding, weak = x.sharding, getattr(x, "weak_type", False)
        elif isinstance(x, np.ndarray):  # placed on the default device by the call
            sharding, weak = None, False
        else:
            raise TypeError(f"program arguments must be arrays, got {type(x).__name__}")
        if isinstance(sharding, jax.sharding.SingleDeviceSharding):
            sharding = None  # the default placement, whether given or not
        sig.append((tuple(x.shape), str(x.dtype), bool(weak), sharding))
    return treedef, tuple(sig)


_BY_TEXT: collections.OrderedDict[tuple, Any] = collections.OrderedDict()
_LOCK = threading.Lock()
_MAX_ENTRIES = 64  # executables kept per level (least recently used dropped)


def _remember(cache: collections.OrderedDict, key: Any, value: Any) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > _MAX_ENTRIES:
        cache.popitem(last=False)


class Program:
    """``jax.jit(fun)`` whose executables are cached by static arguments, then by text.

    ``fun(static, *args)`` takes a :class:`Static` first; the other arguments are pytrees
    of JAX arrays. ``program.executable(static, *args)`` returns the compiled executable
    for arguments like ``args`` (concrete arrays or ``jax.ShapeDtypeStruct`` s), to be
    called as ``executable(*args)``; ``program(static, *args)`` calls it.
    """

    def __init__(self, fun: Callable, *, donate_argnums: tuple[int, ...] = ()):
        self._jit = jax.jit(fun, static_argnums=0, donate_argnums=donate_argnums)
        self._by_static: collections.OrderedDict[tuple, Any] = collections.OrderedDict()
        self._lowered: collections.OrderedDict[tuple, Any] = collections.OrderedDict()
        self._texts: collections.OrderedDict[tuple, str] = collections.OrderedDict()
        self.__wrapped__ = fun

    def _lower(self, key: tuple, static: Static, args: tuple) -> tuple[Any, str]:
        """The lowered program and the SHA-256 of its text, kept until compiled."""
        with _LOCK:
            hit = self._lowered.get(key)
        if hit is None:
            lowered = self._jit.lower(static, *args)
            hit = (lowered, hashlib.sha256(lowered.as_text().encode()).hexdigest())
            with _LOCK:
                _remember(self._lowered, key, hit)
                _remember(self._texts, key, hit[1])
        return hit

    def text_hash(self, static: Static, *args: Any) -> str:
        """SHA-256 of the lowered program's text for arguments like ``args``.

        Every constant of the program is spelt out in that text (fixed hyperparameters,
        schedules, the loss body), so it tells programs apart by what they compute;
        checkpoints record it. Lowering is kept for a later :meth:`executable`.
        """
        key = (jax.default_backend(), static, _signature(args))
        with _LOCK:
            text = self._texts.get(key)
        return text if text is not None else self._lower(key, static, args)[1]

    def executable(self, static: Static, *args: Any) -> Any:
        backend = jax.default_backend()
        key = (backend, static, _signature(args))
        with _LOCK:
            hit = self._by_static.get(key)
        if hit is not None:
            return hit
        lowered, text = self._lower(key, static, args)
        text_key = (backend, text, str(lowered.in_tree))
        with _LOCK:
            compiled = _BY_TEXT.get(text_key)
        if compiled is None:
            options = _CPU_COMPILER_OPTIONS if backend == "cpu" else None
            compiled = lowered.compile(options)
            with _LOCK:
                _remember(_BY_TEXT, text_key, compiled)
        with _LOCK:
            _remember(self._by_static, key, compiled)
            self._lowered.pop(key, None)
        return compiled

    def __call__(self, static: Static, *args: Any) -> Any:
        return self.executable(static, *args)(*args)


_CANONICAL: collections.OrderedDict[tuple, Any] = collections.OrderedDict()


def canonical(obj: Any, probe: Callable, *args: Any) -> Any:
    """The first object seen whose ``probe(obj, *args)`` lowers to the same program.

    A cheap stand-in for identity in a :class:`Static`: a new but identical
    ``make_optimizer`` lambda (or optimizer) is replaced by the one a cached program was
    built from, so the program is found without tracing the whole training loop. The
    probe must exercise everything the object contributes to a program (for an
    optimizer: ``init`` and ``update`` with the extra arguments). Objects whose probe
    fails are returned as they are.
    """
    try:
        lowered = jax.jit(lambda *a: probe(obj, *a)).lower(*args)
    except Exception:  # nothing to compare: identity it is
        return obj
    text = hashlib.sha256(lowered.as_text().encode()).hexdigest()
    key = (jax.default_backend(), type(obj), text, str(lowered.in_tree))
    with _LOCK:
        found = _CANONICAL.get(key, obj)
        _remember(_CANONICAL, key, found)
    return found
