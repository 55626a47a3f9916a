"""``train``: one run, compiled once as a chunked ``lax.scan``."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm.auto

from jaxopt_lab._types import OptState, Params
from jaxopt_lab.train import _checkpoint as ckpt
from jaxopt_lab.train import _checks as checks
from jaxopt_lab.train._callbacks import Callback
from jaxopt_lab.train._engine import (
    RunState,
    Spec,
    Static,
    init_run,
    jit,
    key_words,
    minibatch_indices,
    run_chunk,
)


class TrainResult(NamedTuple):
    """What :func:`train` returns."""

    params: Params  # final parameters (the last finite ones if the run was frozen)
    opt_state: OptState  # final optimizer state
    history: dict[str, np.ndarray]  # metric name -> (num_rows,) array; see `train`


def _run_chunk(static: Static, state: RunState, start, indices, data, monitor, eval_data):
    loss_fn, optimizer, spec = static.items
    return run_chunk(loss_fn, optimizer, spec, state, start, indices, data, monitor, eval_data)


_chunk = jit(_run_chunk, static_argnums=0, donate_argnums=1)


def assemble_history(chunks: list[dict[str, np.ndarray]], spec: Spec, axis: int) -> dict:
    """Concatenates per-chunk rows along ``axis`` and drops the padding rows."""
    if not chunks:
        return {}
    history = {}
    for name in chunks[0]:
        rows = np.concatenate([c[name] for c in chunks], axis=axis)
        history[name] = np.take(rows, np.arange(spec.num_rows), axis=axis)
    history["step"] = np.arange(spec.num_rows, dtype=np.int32) * spec.log_every
    return history


def _probe(optimizer: optax.GradientTransformation, params: Params) -> Any:
    """One update from all-ones gradients: tells optimizers apart for checkpoints."""
    try:
        grads = jax.tree.map(jnp.ones_like, params)
        return optimizer.update(grads, optimizer.init(params), params)[0]
    except Exception:  # an optimizer that needs extra arguments: not fingerprinted
        return None


def train(
    loss_fn: Callable[[Params, Any], jax.Array],
    params: Params,
    optimizer: optax.GradientTransformation,
    data: Any,
    *,
    steps: int,
    batch_size: int | None = None,
    key: jax.Array | None,
    eval_data: Any = None,
    log_every: int = 1,
    callbacks: Sequence[Callback] = (),
    schedule: Callable[[jax.Array], jax.Array] | None = None,
    monitor_size: int = 1024,
    divergence_factor: float | None = None,
    chunk_size: int | None = None,
    progress: bool = True,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
) -> TrainResult:
    r"""Trains ``params`` with ``optimizer`` for ``steps`` updates, in one compiled loop.

    The loop is a ``lax.scan`` compiled once and called in chunks of ``chunk_size``
    steps (a progress bar advances per chunk); the parameters and optimizer state are
    donated to it. A second call with the same ``loss_fn``, ``optimizer``, callbacks and
    settings reuses the compiled program.

    Step ``t`` counts updates: history row ``t`` describes :math:`\theta_t`, the
    parameters after ``t`` updates, and the update that leaves it. Rows are kept for
    ``t = 0, log_every, 2 log_every, ..., steps``; ``history`` maps names to arrays:

    - ``step``: ``t``;
    - ``train_loss``: ``loss_fn`` at :math:`\theta_t` on a fixed monitoring subset of
      ``data`` (``monitor_size`` examples, the same at every step, drawn once with NumPy
      seed 0; all of ``data`` when it is smaller), not the noisy current minibatch;
    - ``val_loss``: ``loss_fn`` at :math:`\theta_t` on all of ``eval_data`` (if given);
    - ``batch_loss``, ``grad_norm``: loss and gradient norm on minibatch ``t``, used by
      update ``t`` (NaN in the last row, where no update follows);
    - ``learning_rate``: ``schedule(t)`` when ``schedule`` is given, else the
      ``learning_rate`` of an ``optax.inject_hyperparams`` state when there is exactly
      one (absent otherwise);
    - ``nonfinite``, ``diverged``: whether the run is frozen by step ``t`` because of a
      non-finite value (``nonfinite``), or for any reason (``diverged``);
    - one entry per callback metric (NaN where the callback was not evaluated).

    A run that produces inf or NaN (loss, gradient, parameters or optimizer state), or
    whose ``train_loss`` exceeds ``divergence_factor`` times the magnitude of its initial
    value, stops changing: its state stays at the last finite values and it is flagged.
    Nothing is raised inside compiled code.

    Minibatches (``batch_size`` given) are drawn without replacement, reshuffled every
    epoch from ``key`` (see :func:`jaxopt_lab.train.minibatch_indices`); the same key
    gives the same run. ``batch_size=None`` trains on all of ``data`` at every step.

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar``; ``batch`` has ``data``'s structure.
      params: the initial parameters, any pytree of arrays (not modified).
      optimizer: an ``optax.GradientTransformation``, e.g. ``jol.momentum(0.1, 0.9)``.
      data: a pytree of arrays sharing a leading (example) axis.
      steps: the number of updates, ``>= 1``.
      batch_size: examples per update, or ``None`` for full batch.
      key: a PRNG key for minibatch order; may be ``None`` for full batch.
      eval_data: optional validation data, structured like ``data``.
      log_every: one history row every ``log_every`` steps; must divide ``steps``.
      callbacks: :class:`Callback` s evaluated every ``callback.every`` steps.
      schedule: the learning-rate schedule inside ``optimizer``, to log it.
      monitor_size: examples in the monitoring subset for ``train_loss``.
      divergence_factor: freeze the run when ``train_loss`` exceeds this many times the
        magnitude of its initial value (``None``: only non-finite values freeze it).
      chunk_size: steps per compiled call, rounded up to a multiple of ``log_every``
        (default: about ``steps / 20``).
      progress: show a tqdm progress bar.
      checkpoint_dir: if given, the state and history are saved there (atomically)
        every ``checkpoint_every`` steps, and a call with the same arguments resumes from
        them; a call with different arguments raises ``ValueError``. The optimizer is
        recognised by one probe update, the loss function by its name.
      checkpoint_every: steps between checkpoints, rounded up to whole chunks
        (default: every chunk).

    Returns:
      A :class:`TrainResult` ``(params, opt_state, history)``.

    Raises:
      ValueError: for bad arguments, naming the argument.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> import jaxopt_lab as jol
      >>> ds = jol.datasets.digits()
      >>> def loss_fn(params, batch):
      ...     logits = batch.x @ params["w"] + params["b"]
      ...     return optax.softmax_cross_entropy_with_integer_labels(logits, batch.y).mean()
      >>> params = {"w": jnp.zeros((64, 10)), "b": jnp.zeros(10)}
      >>> result = jol.train(loss_fn, params, optax.sgd(0.5), ds.train, steps=100,
      ...                    batch_size=32, key=jax.random.key(0), log_every=10,
      ...                    eval_data=ds.validation, progress=False)
      >>> bool(result.history["train_loss"][-1] < result.history["train_loss"][0])
      True

      A Flax NNX model is trained through its state: split it into a static graph and
      a state pytree, merge inside the loss, and merge the trained state back::

        from flax import nnx

        model = nnx.Linear(64, 10, rngs=nnx.Rngs(0))
        graphdef, state = nnx.split(model)

        def nnx_loss(state, batch):
            logits = nnx.merge(graphdef, state)(batch.x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, batch.y).mean()

        result = jol.train(nnx_loss, state, optax.sgd(0.5), ds.train, steps=100, key=None)
        model = nnx.merge(graphdef, result.params)
    """
    steps = checks.positive_int("steps", steps)
    n = checks.leading_axis("data", data)
    if eval_data is not None:
        checks.leading_axis("eval_data", eval_data)
    batch_size = checks.check_batch_size(batch_size, n)
    if batch_size is not None and key is None:
        raise ValueError("`key` is needed to draw minibatches; pass e.g. jax.random.key(0).")
    log_every = checks.check_log_every(log_every, steps)
    if not (
        callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))
    ):
        raise TypeError(f"`optimizer` must be an optax.GradientTransformation, got {optimizer!r}.")
    spec = Spec(
        steps=steps,
        num_examples=n,
        batch_size=batch_size,
        log_every=log_every,
        chunk_size=checks.choose_chunk_size(chunk_size, steps, log_every),
        divergence_factor=checks.check_divergence_factor(divergence_factor),
        callbacks=checks.check_callbacks(callbacks),
        schedule=schedule,
    )
    monitor = checks.to_device(checks.monitoring_subset(data, n, monitor_size))
    data = checks.to_device(data)
    eval_data = None if eval_data is None else checks.to_device(eval_data)
    static = Static(loss_fn, optimizer, spec)
    # Eager: a jitted init would be compiled anew for every optimizer.
    state = init_run(loss_fn, optimizer, spec, params, monitor)

    chunks: list[dict[str, np.ndarray]] = []
    first = 0
    path = None
    if checkpoint_dir is not None:
        every = checks.positive_int("checkpoint_every", checkpoint_every or spec.chunk_size)
        meta = {
            "kind": "train",
            "loss_fn": ckpt.function_name(loss_fn),
            "spec": [
                steps,
                batch_size,
                log_every,
                spec.chunk_size,
                monitor_size,
                spec.divergence_factor,
            ],
            "callbacks": [[ckpt.function_name(type(cb)), cb.every] for cb in spec.callbacks],
            "schedule": None if schedule is None else ckpt.function_name(schedule),
            "key": None if key is None else ckpt.describe(key),
            "data": ckpt.describe(data),
            "eval_data": None if eval_data is None else ckpt.describe(eval_data),
            "params": ckpt.describe(params),
            "optimizer": ckpt.describe(_probe(optimizer, params)),
        }
        path = ckpt.open_directory(checkpoint_dir, meta) / "train.npz"
        if path.exists():
            saved = ckpt.load_arrays(path)
            state = checks.to_device(ckpt.tree_from_arrays("s", saved, state))
            first = int(saved["next_chunk"])
            if first:
                names = sorted(k[2:] for k in saved if k.startswith("h_"))
                chunks = [{k: saved["h_" + k] for k in names}]

    words = None if key is None else key_words(key)
    bar = tqdm.auto.tqdm(total=steps, disable=not progress, unit="step", desc="train")
    bar.update(min(first * spec.chunk_size, steps))
    last_saved = first * spec.chunk_size
    for c in range(first, spec.num_chunks):
        start = c * spec.chunk_size
        idx = None
        if batch_size is not None:
            idx = minibatch_indices(words, start, spec.chunk_size, n, batch_size)
        state, rows = _chunk(static, state, start, idx, data, monitor, eval_data)
        chunks.append(jax.device_get(rows))
        end = start + spec.chunk_size
        bar.update(min(end, steps) - min(start, steps))
        if path is not None and (end - last_saved >= every or c == spec.num_chunks - 1):
            history = {k: np.concatenate([ch[k] for ch in chunks]) for k in chunks[0]}
            chunks = [history]
            arrays = ckpt.tree_to_arrays("s", jax.device_get(state))
            arrays.update({"h_" + k: v for k, v in history.items()})
            ckpt.save_arrays(path, {**arrays, "next_chunk": np.asarray(c + 1)})
            last_saved = end
    bar.close()
    history = assemble_history(chunks, spec, axis=0)
    return TrainResult(params=state.params, opt_state=state.opt_state, history=history)
