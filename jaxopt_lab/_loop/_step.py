"""The per-run training step, written once and shared by ``train`` and ``sweep``.

A run is a :class:`RunState` advanced by :func:`run_chunk`, a ``lax.scan`` over
``Spec.chunk_size`` steps. ``train`` compiles :func:`run_chunk` for one run; ``sweep``
compiles ``vmap(run_chunk)`` over many (sharded over devices), so the two agree run for run.

Step ``t`` (``0 <= t <= steps``, counted before update ``t``) does, in order:

1. if ``t % log_every == 0``: evaluate the loss at :math:`\\theta_t` on the monitoring
   subset (and on ``eval_data``), with the model in evaluation mode; a non-finite value,
   or one above ``divergence_factor`` times the magnitude of the initial one, freezes
   the run;
2. each callback with ``t % every == 0``;
3. if ``t < steps``: loss and gradient on minibatch ``t`` (training mode, which also
   updates the model's state) and update; after the ``log_every`` updates up to the next
   logged step, a run in which anything came out non-finite is put back to its state
   before them and frozen. The optimizer gets ``value``, ``grad``
   and ``value_fn`` (the loss of minibatch ``t`` as a function of the parameters) as
   extra arguments, so line searches, Newton's method and ``reduce_on_plateau`` train
   like any other rule.

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
import optax

from jaxopt_lab._loop._callbacks import call_callback
from jaxopt_lab._loop._model import Model
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


class EarlyStopping(NamedTuple):
    """Stop a run once ``metric`` has not improved for ``patience`` logged rows.

    Lecture 003 (Favaro, after Goodfellow et al. ch. 7-8): keep the parameters with the
    best validation loss, stop when it has not improved for a while. A row improves on
    the best when its ``metric`` is below the best so far minus ``min_delta``; after
    ``patience`` rows in a row without improvement the run stops: it is frozen like a
    diverged run (its updates are discarded) but flagged ``stopped``, not ``diverged``,
    and its best parameters (and model state) are kept with their step.
    """

    metric: str = "val_loss"  # "val_loss" (needs eval_data) or "train_loss"
    patience: int = 10  # logged rows without improvement before the run stops
    min_delta: float = 0.0  # an improvement must lower the best by more than this


class Best(NamedTuple):
    """A run's best point so far, under early stopping."""

    value: jax.Array  # float32: the best metric so far (inf before the first row)
    step: jax.Array  # int32: the step of that row
    params: Params  # the parameters then
    model_state: Any  # the model state then
    waiting: jax.Array  # int32: logged rows since the best


class Spec(NamedTuple):
    """Static description of a run; hashable, so it can key a compiled program."""

    steps: int  # number of updates
    num_examples: int  # leading-axis length of the training data
    batch_size: int | None  # None: full batch
    log_every: int  # one history row every `log_every` steps; divides `steps`
    chunk_size: int  # steps per compiled call; a multiple of `log_every`
    divergence_factor: float | None  # freeze when train loss > factor * |initial loss|
    callbacks: tuple  # Callback objects (see _callbacks.Callback)
    schedule: Callable | None  # learning-rate schedule to log, evaluated at t
    early_stopping: EarlyStopping | None = None

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

    params: Params  # current trained parameters (last finite ones once frozen)
    opt_state: OptState  # optimizer state
    model_state: Any  # the model's other state (BatchNorm statistics, RNG counters); or None
    key: Any  # typed PRNG key: training step t passes fold_in(key, t) to loss_fn; or None
    callback_states: tuple  # one state per callback
    initial_loss: jax.Array  # float32 scalar: monitoring loss at step 0
    nonfinite: jax.Array  # bool scalar: a non-finite value has frozen the run
    diverged: jax.Array  # bool scalar: the run is frozen (non-finite or too large)
    best: Best | None = None  # with early stopping: the best point so far
    stopped: jax.Array | None = None  # bool scalar, with early stopping: stopped early


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
    """``fn(carry, *args) -> (carry, row)`` when ``pred``; else ``(carry, NaNs)``.

    ``fn`` is traced once, to a jaxpr that gives both the branch and the shapes of the
    NaN row (tracing Python is most of the cost of building a training program).
    """
    operands = (carry, *args)
    closed, shapes = jax.make_jaxpr(lambda ops: fn(*ops), return_shape=True)(operands)
    out_tree = jax.tree.structure(shapes)

    def run(ops):
        out = jax.core.eval_jaxpr(closed.jaxpr, closed.consts, *jax.tree.leaves(ops))
        return jax.tree.unflatten(out_tree, out)

    def skip(ops):
        nans = jax.tree.map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype), shapes[1])
        return ops[0], nans

    return jax.lax.cond(pred, run, skip, operands)


def with_extra_args(optimizer: optax.GradientTransformation) -> optax.GradientTransformation:
    """``optimizer`` accepting the extra arguments the step passes (dropped if unused)."""
    return optax.with_extra_args_support(optimizer)


def init_run(
    model: Model,
    optimizer: optax.GradientTransformation,
    spec: Spec,
    params: Params,
    model_state: Any,
    key: Any,
    monitor: Any,
) -> RunState:
    """The state of a run at step 0.

    Traceable, or eager; every leaf is a fresh copy, so the state can be donated.
    """
    loss0 = jnp.asarray(model.eval_loss(params, model_state, monitor), jnp.float32)
    bad = ~jnp.isfinite(loss0)
    state = RunState(
        params=params,
        opt_state=optimizer.init(params),
        model_state=model_state,
        key=key if model.uses_key else None,
        callback_states=tuple(cb.init(params) for cb in spec.callbacks),
        initial_loss=loss0,
        nonfinite=bad,
        diverged=bad,
    )
    if spec.early_stopping is not None:
        best = Best(
            value=jnp.asarray(jnp.inf, jnp.float32),
            step=jnp.asarray(0, jnp.int32),
            params=params,
            model_state=model_state,
            waiting=jnp.asarray(0, jnp.int32),
        )
        state = state._replace(best=best, stopped=jnp.asarray(False))
    return jax.tree.map(jnp.copy, state)


def _halted(state: RunState) -> jax.Array:
    """Whether the run no longer trains: diverged, or stopped early."""
    return state.diverged if state.stopped is None else state.diverged | state.stopped


def _early_stopping(spec: Spec, state: RunState, row: dict, t0, live) -> RunState:
    """The best point and the stop flag after the row at ``t0`` (see :class:`EarlyStopping`)."""
    es, best = spec.early_stopping, state.best
    value = row[es.metric].astype(jnp.float32)
    active = live & ~_halted(state)
    improved = active & (value < best.value - es.min_delta)

    def keep(new, old):
        return jnp.where(improved, new, old)

    waiting = jnp.where(improved, 0, jnp.where(active, best.waiting + 1, best.waiting))
    best = Best(
        value=keep(value, best.value),
        step=keep(jnp.asarray(t0, jnp.int32), best.step),
        params=jax.tree.map(keep, state.params, best.params),
        model_state=jax.tree.map(keep, state.model_state, best.model_state),
        waiting=waiting,
    )
    stopped = state.stopped | (active & (waiting >= es.patience))
    return state._replace(best=best, stopped=stopped)


def _block(model: Model, optimizer, spec: Spec, data, monitor, eval_data):
    """Returns ``body(state, (t0, block_indices)) -> (state, row)`` for ``lax.scan``.

    A block is the ``log_every`` steps ``t0, ..., t0 + log_every - 1`` of one history row:
    the row's observations at ``t0``, then the block's updates in an inner ``lax.scan``
    (the row keeps what update ``t0`` saw). Since ``log_every`` divides ``steps``, a
    block's updates are all real or all padding, so one ``lax.cond`` per block decides.
    """
    factor = spec.divergence_factor
    given = optimizer  # what callbacks see: the transformation as the user made it
    optimizer = with_extra_args(optimizer)
    # Callbacks due between logged steps (`every` not a multiple of `log_every`) run in
    # the inner loop too; their metrics there are not kept, their state is.
    inner_callbacks = [i for i, cb in enumerate(spec.callbacks) if cb.every % spec.log_every]

    # Conditional branches carry only what they change, so that skipping one does not
    # copy the whole run state.
    def observe(carry, params, model_state):
        row = {"train_loss": _as_metric(model.eval_loss(params, model_state, monitor))}
        if eval_data is not None:
            row["val_loss"] = _as_metric(model.eval_loss(params, model_state, eval_data))
        return carry, row

    def callback(i, t):
        def run(cb_state, state: RunState):
            cb_state, metrics = call_callback(
                spec.callbacks[i],
                t,
                state.params,
                cb_state,
                opt_state=state.opt_state,
                model_state=state.model_state,
                model=model.module(state.params, state.model_state),
                optimizer=given,
            )
            return cb_state, {k: _as_metric(v) for k, v in metrics.items()}

        return run

    def callbacks_at(state: RunState, t, which, live):
        cb_states, row = list(state.callback_states), {}
        for i in which:
            due = live & (t % spec.callbacks[i].every == 0)
            cb_states[i], metrics = _cond_or_nan(due, callback(i, t), cb_states[i], state)
            clash = set(metrics) & (set(row) | set(BUILTIN_METRICS))
            if clash:
                raise ValueError(
                    f"`callbacks`: callback {i} ({type(spec.callbacks[i]).__name__}) returns "
                    f"metrics {sorted(clash)} whose names are already taken; rename them."
                )
            row.update(metrics)
        return state._replace(callback_states=tuple(cb_states)), row

    def update(state: RunState, t, idx, first):
        """Update ``t``, unchecked; the row's metrics when ``first`` (traced or not)."""
        batch = data if idx is None else jax.tree.map(lambda a: a[idx], data)
        key = None if state.key is None else jax.random.fold_in(state.key, t)

        def value(params):
            return model.train_loss(params, state.model_state, batch, key)

        (loss, model_state), grads = jax.value_and_grad(value, has_aux=True)(state.params)
        updates, opt_state = optimizer.update(
            grads,
            state.opt_state,
            state.params,
            value=loss,
            grad=grads,
            value_fn=lambda params: value(params)[0],
        )
        params = optax.apply_updates(state.params, updates)
        norm = lambda g: _as_metric(optax.tree.norm(g))
        if isinstance(first, bool):
            grad_norm = norm(grads)
        else:  # only the row's update pays for the norm
            grad_norm = jax.lax.cond(first, norm, lambda g: jnp.zeros((), jnp.float32), grads)
        row = {"batch_loss": _as_metric(loss), "grad_norm": grad_norm}
        lr = learning_rate_in_state(opt_state)
        if spec.schedule is None and lr is not None:
            row["learning_rate"] = lr
        state = state._replace(params=params, opt_state=opt_state, model_state=model_state)
        return state, row

    def updates_of_block(state: RunState, t0, idx):
        """Updates ``t0, ..., t0 + log_every - 1``, then one check; the row of the first.

        A run that went non-finite in the block (a loss, or the state at its end: a NaN
        in the state stays there), or that was frozen already, is put back to its state
        at the start of the block. Checking every update instead costs a fifth of a small
        net's training time.
        """
        if spec.log_every == 1:
            end, row = update(state, t0, None if idx is None else idx[0], True)
            losses = row["batch_loss"]
        else:

            def inner(state, xs):
                i, idx = xs
                t = t0 + i
                state, _ = callbacks_at(state, t, inner_callbacks, i > 0)
                return update(state, t, idx, i == 0)

            steps = jnp.arange(spec.log_every, dtype=jnp.int32)
            end, rows = jax.lax.scan(inner, state, (steps, idx))
            losses = rows["batch_loss"]
            row = jax.tree.map(lambda r: r[0], rows)
        trained = (end.params, end.opt_state, end.model_state)
        ok = _all_finite(trained) & jnp.all(jnp.isfinite(losses))
        ok = ok & jnp.isfinite(row["grad_norm"])
        bad = ~ok & ~_halted(state)
        frozen = _halted(state) | bad

        def keep(new, old):
            return jnp.where(frozen, old, new)

        params, opt_state, model_state = jax.tree.map(
            keep, trained, (state.params, state.opt_state, state.model_state)
        )
        state = end._replace(
            params=params,
            opt_state=opt_state,
            model_state=model_state,
            nonfinite=state.nonfinite | bad,
            diverged=state.diverged | bad,
        )
        return state, row

    def body(state: RunState, xs):
        t0, idx = xs
        live = t0 <= spec.steps
        _, row = _cond_or_nan(live, observe, None, state.params, state.model_state)
        nonfinite = live & ~jnp.isfinite(row["train_loss"])
        bad = nonfinite
        if factor is not None:
            # The bound scales with the size of the initial loss, so a loss that starts
            # negative (a landscape, a log-likelihood) is not flagged for being above it.
            bound = factor * jnp.abs(state.initial_loss)
            bad = bad | (live & (row["train_loss"] > bound))
        state = state._replace(
            nonfinite=state.nonfinite | (nonfinite & ~state.diverged),
            diverged=state.diverged | bad,
        )
        state, metrics = callbacks_at(state, t0, range(len(spec.callbacks)), live)
        row.update(metrics)
        row["nonfinite"], row["diverged"] = state.nonfinite, state.diverged  # by step t0
        if spec.early_stopping is not None:
            state = _early_stopping(spec, state, row, t0, live)
            row["stopped"], row["best_step"] = state.stopped, state.best.step
        state, urow = _cond_or_nan(t0 < spec.steps, updates_of_block, state, t0, idx)
        row.update(urow)
        if spec.schedule is not None:
            row["learning_rate"] = _as_metric(spec.schedule(t0))
        return state, row

    return body


def run_chunk(
    model: Model,
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
    rows, every = spec.rows_per_chunk, spec.log_every
    t0 = jnp.asarray(start_step, jnp.int32) + every * jnp.arange(rows, dtype=jnp.int32)
    if indices is not None:
        indices = indices.reshape(rows, every, *indices.shape[1:])
    body = _block(model, optimizer, spec, data, monitor, eval_data)
    return jax.lax.scan(body, state, (t0, indices))


def probe_optimizer(optimizer: optax.GradientTransformation, params: Params) -> Any:
    """``init`` and one ``update`` with every extra argument the step passes.

    Traced (not run) by :func:`~jaxopt_lab._loop._program.canonical` to tell whether two
    optimizers compute the same thing.
    """
    optimizer = with_extra_args(optimizer)
    state = optimizer.init(params)
    value_fn = lambda p: sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(p))
    return optimizer.update(
        params, state, params, value=value_fn(params), grad=params, value_fn=value_fn
    )


def probe_optimizer_factory(make_optimizer: Callable, hparams: Any, params: Params) -> Any:
    """:func:`probe_optimizer` of ``make_optimizer(hparams)`` (traced hyperparameters)."""
    return probe_optimizer(make_optimizer(hparams), params)
