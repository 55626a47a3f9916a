"""The per-run training step, written once and shared by ``train`` and ``sweep``.

A run is a :class:`RunState` advanced by :func:`run_chunk`, a ``lax.scan`` over
``Spec.chunk_size`` steps. ``train`` jits :func:`run_chunk` for one run; ``sweep`` jits
``vmap(run_chunk)`` over many (sharded over devices), so the two agree run for run.

Step ``t`` (``0 <= t <= steps``, counted before update ``t``) does, in order:

1. if ``t % log_every == 0``: evaluate the loss at :math:`\\theta_t` on the monitoring
   subset (and on ``eval_data``); a non-finite value, or one above
   ``divergence_factor`` times the magnitude of the initial one, freezes the run;
2. each callback with ``t % every == 0``;
3. if ``t < steps``: gradient on minibatch ``t``, update, and freeze the run instead if
   anything came out non-finite.

All branching is ``lax.cond`` on ``t``, which is shared by every run of a sweep, so the
branches stay real branches under ``vmap``. Chunks are padded past ``steps``; padded
steps do nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_lab._types import OptState, Params

BUILTIN_METRICS = (
    "step",
    "train_loss",
    "val_loss",
    "batch_loss",
    "grad_norm",
    "learning_rate",
    "nonfinite",
    "diverged",
)


class Spec(NamedTuple):
    """Static description of a run; hashable, so it can be a ``jit`` static argument."""

    steps: int  # number of updates
    num_examples: int  # leading-axis length of the training data
    batch_size: int | None  # None: full batch
    log_every: int  # one history row every `log_every` steps; divides `steps`
    chunk_size: int  # steps per compiled call; a multiple of `log_every`
    divergence_factor: float | None  # freeze when train loss > factor * |initial loss|
    callbacks: tuple  # Callback objects (see _callbacks.Callback)
    schedule: Callable | None  # learning-rate schedule to log, evaluated at t

    @property
    def num_chunks(self) -> int:
        """Chunks needed to reach step ``steps`` (the final row) inclusive."""
        return math.ceil((self.steps + 1) / self.chunk_size)

    @property
    def rows_per_chunk(self) -> int:
        return self.chunk_size // self.log_every

    @property
    def num_rows(self) -> int:
        """History rows: steps ``0, log_every, ..., steps``."""
        return self.steps // self.log_every + 1


class RunState(NamedTuple):
    """Everything one run carries from step to step."""

    params: Params  # current parameters (last finite ones once frozen)
    opt_state: OptState  # optimizer state
    callback_states: tuple  # one state per callback
    initial_loss: jax.Array  # float32 scalar: monitoring loss at step 0
    nonfinite: jax.Array  # bool scalar: a non-finite value has frozen the run
    diverged: jax.Array  # bool scalar: the run is frozen (non-finite or too large)


def key_words(key: jax.Array) -> tuple[int, ...]:
    """The raw 32-bit words of a PRNG key (typed ``jax.random.key`` or legacy uint32)."""
    if jax.dtypes.issubdtype(jnp.asarray(key).dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return tuple(int(w) for w in np.asarray(key, np.uint32).ravel())


def minibatch_indices(
    key: jax.Array | tuple[int, ...],
    start_step: int,
    num_steps: int,
    num_examples: int,
    batch_size: int,
) -> np.ndarray:
    """Indices of the minibatches of steps ``start_step, ..., start_step + num_steps - 1``.

    The examples form an endless stream of epochs; epoch ``e`` is the permutation
    ``np.random.default_rng([*words, e]).permutation(num_examples)``, where ``words``
    are the raw 32-bit words of ``key``, and step ``t`` takes stream positions
    ``t * batch_size, ..., (t + 1) * batch_size - 1``. So every example is used exactly
    once per epoch, each epoch is reshuffled, and the same ``key`` gives the same
    batches. A batch may straddle two epochs. Computed on the host with NumPy: nothing
    to compile, and the same numbers for ``train`` and ``sweep`` on any device.

    Args:
      key: a PRNG key (or its words, from :func:`key_words`).
      start_step: the first step.
      num_steps: how many steps.
      num_examples: size of the data set.
      batch_size: examples per step, ``<= num_examples``.

    Returns:
      An int32 array of shape ``(num_steps, batch_size)``.
    """
    words = key if isinstance(key, tuple) else key_words(key)
    n, b = num_examples, batch_size
    first, last = start_step * b // n, ((start_step + num_steps) * b - 1) // n
    stream = np.concatenate(
        [np.random.default_rng([*words, e]).permutation(n) for e in range(first, last + 1)]
    )
    positions = np.arange(start_step * b, (start_step + num_steps) * b) - first * n
    return stream[positions].reshape(num_steps, b).astype(np.int32)


def _all_finite(tree: Any) -> jax.Array:
    ok = jnp.asarray(True)
    for leaf in jax.tree.leaves(tree):
        if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact):
            ok = ok & jnp.all(jnp.isfinite(leaf))
    return ok


def _as_metric(value: Any) -> jax.Array:
    value = jnp.asarray(value)
    return value if jnp.issubdtype(value.dtype, jnp.inexact) else value.astype(jnp.float32)


def learning_rate_in_state(opt_state: OptState) -> jax.Array | None:
    """The ``learning_rate`` hyperparameter of an ``optax.inject_hyperparams`` state."""
    try:  # arrays only: a schedule's `hyperparams_states` entry has the same name
        value = optax.tree.get(
            opt_state, "learning_rate", filtering=lambda _, v: isinstance(v, jax.Array)
        )
    except KeyError:  # several: ambiguous, not logged
        return None
    if value is None or not hasattr(value, "shape") or value.shape != ():
        return None
    return _as_metric(value)


def _cond_or_nan(pred: jax.Array, fn: Callable, carry: Any, *args: Any):
    """``fn(carry, *args) -> (carry, row)`` when ``pred``; else ``(carry, NaNs)``."""

    def skip(carry, *args):
        _, row = jax.eval_shape(fn, carry, *args)
        return carry, jax.tree.map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype), row)

    return jax.lax.cond(pred, fn, skip, carry, *args)


def init_run(
    loss_fn: Callable,
    optimizer: optax.GradientTransformation,
    spec: Spec,
    params: Params,
    monitor: Any,
) -> RunState:
    """The state of a run at step 0.

    Traceable, or eager; every leaf is a fresh copy, so the state can be donated.
    """
    loss0 = jnp.asarray(loss_fn(params, monitor), jnp.float32)
    bad = ~jnp.isfinite(loss0)
    state = RunState(
        params=params,
        opt_state=optimizer.init(params),
        callback_states=tuple(cb.init(params) for cb in spec.callbacks),
        initial_loss=loss0,
        nonfinite=bad,
        diverged=bad,
    )
    return jax.tree.map(jnp.copy, state)


def _step(loss_fn, optimizer, spec, data, monitor, eval_data):
    """Returns ``body(state, (t, batch_indices)) -> (state, row)`` for ``lax.scan``."""
    factor = spec.divergence_factor

    # Conditional branches carry only what they change, so that skipping one does not
    # copy the whole run state.
    def observe(carry, params):
        row = {"train_loss": _as_metric(loss_fn(params, monitor))}
        if eval_data is not None:
            row["val_loss"] = _as_metric(loss_fn(params, eval_data))
        return carry, row

    def callback(i, t):
        def run(cb_state, params):
            cb_state, metrics = spec.callbacks[i](t, params, cb_state)
            return cb_state, {k: _as_metric(v) for k, v in metrics.items()}

        return run

    def update(state: RunState, t, idx):
        del t
        batch = data if idx is None else jax.tree.map(lambda a: a[idx], data)
        loss, grads = jax.value_and_grad(loss_fn)(state.params, batch)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        grad_norm = optax.tree.norm(grads)
        ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        ok = ok & _all_finite(params) & _all_finite(opt_state)
        frozen = state.diverged | ~ok

        def keep(new, old):
            return jnp.where(frozen, old, new)

        row = {"batch_loss": _as_metric(loss), "grad_norm": _as_metric(grad_norm)}
        lr = learning_rate_in_state(opt_state)
        if spec.schedule is None and lr is not None:
            row["learning_rate"] = lr
        state = state._replace(
            params=jax.tree.map(keep, params, state.params),
            opt_state=jax.tree.map(keep, opt_state, state.opt_state),
            nonfinite=state.nonfinite | (~ok & ~state.diverged),
            diverged=frozen,
        )
        return state, row

    def body(state: RunState, xs):
        t, idx = xs
        live = t <= spec.steps
        logged = live & (t % spec.log_every == 0)
        _, row = _cond_or_nan(logged, observe, None, state.params)
        nonfinite = logged & ~jnp.isfinite(row["train_loss"])
        bad = nonfinite
        if factor is not None:
            # The bound scales with the size of the initial loss, so a loss that starts
            # negative (a landscape, a log-likelihood) is not flagged for being above it.
            bound = factor * jnp.abs(state.initial_loss)
            bad = bad | (logged & (row["train_loss"] > bound))
        state = state._replace(
            nonfinite=state.nonfinite | (nonfinite & ~state.diverged),
            diverged=state.diverged | bad,
        )
        cb_states = list(state.callback_states)
        for i, cb in enumerate(spec.callbacks):
            due = live & (t % cb.every == 0)
            cb_states[i], metrics = _cond_or_nan(due, callback(i, t), cb_states[i], state.params)
            clash = set(metrics) & (set(row) | set(BUILTIN_METRICS))
            if clash:
                raise ValueError(
                    f"`callbacks`: callback {i} ({type(cb).__name__}) returns metrics "
                    f"{sorted(clash)} whose names are already taken; rename them."
                )
            row.update(metrics)
        state = state._replace(callback_states=tuple(cb_states))
        state, urow = _cond_or_nan(t < spec.steps, update, state, t, idx)
        row.update(urow)
        if spec.schedule is not None:
            row["learning_rate"] = _as_metric(spec.schedule(t))
        row["nonfinite"] = state.nonfinite
        row["diverged"] = state.diverged
        return state, row

    return body


def run_chunk(
    loss_fn: Callable,
    optimizer: optax.GradientTransformation,
    spec: Spec,
    state: RunState,
    start_step: jax.Array,
    indices: jax.Array | None,
    data: Any,
    monitor: Any,
    eval_data: Any,
) -> tuple[RunState, dict[str, jax.Array]]:
    """Advances one run by ``spec.chunk_size`` steps from ``start_step``.

    Args:
      indices: the chunk's minibatch indices, ``(chunk_size, batch_size)`` from
        :func:`minibatch_indices`, or ``None`` for full batch.

    Returns:
      The new state and the history rows of the chunk: a dict of arrays of length
      ``spec.rows_per_chunk`` (rows past ``spec.steps`` are padding).
    """
    c = spec.chunk_size
    ts = jnp.asarray(start_step, jnp.int32) + jnp.arange(c, dtype=jnp.int32)
    idx = indices
    body = _step(loss_fn, optimizer, spec, data, monitor, eval_data)
    state, ys = jax.lax.scan(body, state, (ts, idx))
    return state, jax.tree.map(lambda y: y[:: spec.log_every], ys)


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if a is None or isinstance(a, bool | int | float | str | jax.sharding.Mesh):
        return a == b
    return a is b


def _hash(a: Any) -> int:
    if isinstance(a, tuple):
        return hash(tuple(_hash(x) for x in a))
    if a is None or isinstance(a, bool | int | float | str | jax.sharding.Mesh):
        return hash(a)
    return id(a)


class Static:
    """Static ``jit`` arguments compared by value for plain data, by identity otherwise.

    Functions, optimizers and callbacks need not be hashable, and a second call with the
    same objects and settings reuses the compiled program.
    """

    def __init__(self, *items: Any):
        self.items = items

    def __hash__(self) -> int:
        return _hash(self.items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Static) and _same(self.items, other.items)


# Measured on a 2-core CPU (MLP train steps, plain and vmapped over 64 runs): LLVM
# optimisation level 1 compiles these loops 15-45% faster than the default level and runs
# them as fast (the time goes to dot products, which are library calls either way). For
# short training runs, compilation is most of the wall time.
_CPU_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}


def jit(fun: Callable, **kwargs: Any) -> Callable:
    """``jax.jit(fun, **kwargs)``, with lighter LLVM optimisation on the CPU backend."""
    on_cpu = jax.jit(fun, compiler_options=_CPU_COMPILER_OPTIONS, **kwargs)
    elsewhere = jax.jit(fun, **kwargs)

    def pick():
        return on_cpu if jax.default_backend() == "cpu" else elsewhere

    def call(*args):
        return pick()(*args)

    call.lower = lambda *args: pick().lower(*args)
    call._cache_size = lambda: on_cpu._cache_size() + elsewhere._cache_size()
    call.__wrapped__ = fun
    return call
