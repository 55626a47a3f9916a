"""Argument checks and host-side preparation shared by ``train`` and ``sweep``."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab._loop._callbacks import Callback
from jaxopt_lab._loop._step import EarlyStopping, Spec
from jaxopt_lab._validation import check_count as check_count
from jaxopt_lab._validation import check_key as check_key
from jaxopt_lab._validation import leading_axis as leading_axis


def is_optimizer(obj: Any) -> bool:
    """Whether ``obj`` looks like an optax transformation: callable ``init`` and ``update``."""
    return callable(getattr(obj, "init", None)) and callable(getattr(obj, "update", None))


def check_optimizer(name: str, obj: Any) -> Any:
    if not is_optimizer(obj):
        raise TypeError(
            f"`{name}` must be an optax.GradientTransformation (with `init` and `update`), "
            f"got {obj!r}; e.g. jol.momentum(0.1, 0.9) or optax.adam(1e-3)."
        )
    return obj


def check_batch_size(batch_size: int | None, num_examples: int) -> int | None:
    if batch_size is None:
        return None
    batch_size = check_count(
        batch_size, "batch_size", fix="Pass e.g. 32, or None for full-batch training."
    )
    if batch_size > num_examples:
        raise ValueError(
            f"`batch_size` = {batch_size} is larger than the data ({num_examples} examples); "
            "pass a smaller one, or `batch_size=None` for full-batch training."
        )
    return batch_size


def check_log_every(log_every: int, steps: int) -> int:
    log_every = check_count(log_every, "log_every", fix="Pass e.g. 1 to log every step.")
    if steps % log_every:
        raise ValueError(
            f"`log_every` = {log_every} must divide `steps` = {steps}, so that the last "
            "history row holds the final parameters."
        )
    return log_every


def choose_chunk_size(chunk_size: int | None, steps: int, log_every: int) -> int:
    """Steps per compiled call: a multiple of ``log_every`` (about 20 chunks by default)."""
    if chunk_size is None:
        chunk_size = max(1, math.ceil(steps / 20))
    chunk_size = check_count(
        chunk_size, "chunk_size", fix="Pass e.g. 100, or None for about 20 chunks."
    )
    return math.ceil(chunk_size / log_every) * log_every


def default_log_every(steps: int, rows: int = 50) -> int:
    """The largest divisor of ``steps`` that keeps at least ``rows`` history rows (or 1).

    Divisors come in pairs ``(d, steps // d)``, so ``sqrt(steps)`` trials find them all.
    """
    limit = max(1, steps // rows)
    best = 1
    for d in range(1, math.isqrt(steps) + 1):
        if steps % d == 0:
            best = max(best, *(x for x in (d, steps // d) if x <= limit), 1)
    return best


def check_monitor_size(monitor_size: Any) -> int:
    return check_count(
        monitor_size, "monitor_size", fix="Pass e.g. 1024 examples to compute the train loss on."
    )


# The step counter, the minibatch positions and the history are int32 on the device.
MAX_STEPS = 2**31 - 1


def check_callbacks(callbacks: Any) -> tuple:
    try:
        callbacks = tuple(callbacks)
    except TypeError:
        raise TypeError(
            f"`callbacks` must be a sequence of Callbacks, got {callbacks!r}; pass e.g. "
            "[jol.curvature.SharpnessCallback(...)] or ()."
        ) from None
    for i, cb in enumerate(callbacks):
        if not isinstance(cb, Callback):
            raise TypeError(
                f"`callbacks[{i}]` = {cb!r} is not a Callback: it needs an `every` int, "
                "`init(params)` and `__call__(step, params, state) -> (state, metrics)`."
            )
        check_count(cb.every, f"callbacks[{i}].every", fix="E.g. every=100.")
    return callbacks


def check_divergence_factor(factor: float | None) -> float | None:
    if factor is None:
        return None
    if isinstance(factor, bool | str) or np.ndim(factor) != 0:
        raise TypeError(
            f"`divergence_factor` must be a number > 0 (or None), got {factor!r}; e.g. 1e3."
        )
    factor = float(factor)
    if not factor > 0:
        raise ValueError(f"`divergence_factor` must be > 0 (or None), got {factor}.")
    return factor


def build_spec(
    *,
    steps: Any,
    num_examples: int,
    batch_size: Any,
    log_every: Any,
    chunk_size: Any,
    divergence_factor: Any,
    callbacks: Any,
    schedule: Any = None,
    early_stopping: Any = None,
    has_eval_data: bool = False,
) -> Spec:
    """The checked :class:`Spec` of a run (``steps`` checked before the others)."""
    steps = check_count(
        steps,
        "steps",
        maximum=MAX_STEPS,
        fix="A run's step counter is int32: pass fewer steps, or continue from the result.",
    )
    if schedule is not None and not callable(schedule):
        raise TypeError(
            f"`schedule` must be the learning-rate schedule (a function of the step) inside "
            f"the optimizer, or None; got {schedule!r}."
        )
    log_every = check_log_every(log_every, steps)
    return Spec(
        steps=steps,
        num_examples=num_examples,
        batch_size=check_batch_size(batch_size, num_examples),
        log_every=log_every,
        chunk_size=choose_chunk_size(chunk_size, steps, log_every),
        divergence_factor=check_divergence_factor(divergence_factor),
        callbacks=check_callbacks(callbacks),
        schedule=schedule,
        early_stopping=check_early_stopping(early_stopping, has_eval_data),
    )


def check_early_stopping(early_stopping: Any, has_eval_data: bool) -> EarlyStopping | None:
    """``early_stopping`` checked: an :class:`EarlyStopping` (or None), by name."""
    if early_stopping is None:
        return None
    if not isinstance(early_stopping, EarlyStopping):
        raise TypeError(
            "`early_stopping` must be jol.train.EarlyStopping(metric=..., patience=...) or "
            f"None, got {early_stopping!r}."
        )
    metric, patience, min_delta = early_stopping
    if metric not in ("val_loss", "train_loss"):
        raise ValueError(
            f"`early_stopping.metric` must be 'val_loss' or 'train_loss', got {metric!r}."
        )
    if metric == "val_loss" and not has_eval_data:
        raise ValueError(
            "`early_stopping.metric`='val_loss' needs `eval_data`; pass eval_data=..., or "
            "EarlyStopping(metric='train_loss', ...)."
        )
    patience = check_count(patience, "early_stopping.patience", fix="e.g. patience=10 rows.")
    if (
        isinstance(min_delta, bool)
        or not isinstance(min_delta, int | float)
        or not math.isfinite(min_delta)
        or min_delta < 0
    ):
        raise ValueError(
            f"`early_stopping.min_delta` must be a number >= 0, got {min_delta!r}; e.g. 0.0."
        )
    return EarlyStopping(metric, patience, float(min_delta))


def check_like(name: str, tree: Any, like: Any, like_name: str) -> None:
    """``tree`` must be structured like ``like``, with the same per-example shapes."""
    if jax.tree.structure(tree) != jax.tree.structure(like):
        raise ValueError(
            f"`{name}` must be structured like `{like_name}` (the loss reads both), got "
            f"{jax.tree.structure(tree)} against {jax.tree.structure(like)}."
        )
    for (path, a), b in zip(
        jax.tree_util.tree_leaves_with_path(tree), jax.tree.leaves(like), strict=True
    ):
        if np.shape(a)[1:] != np.shape(b)[1:]:
            raise ValueError(
                f"`{name}`{jax.tree_util.keystr(path)} has examples of shape "
                f"{np.shape(a)[1:]}, `{like_name}` of shape {np.shape(b)[1:]}; they must "
                "agree after the leading (example) axis."
            )


def check_loss(model: Any, params: Any, model_state: Any, data: Any, batch: int) -> None:
    """``loss_fn`` must return a real scalar on a batch of ``batch`` examples (abstractly)."""
    like = jax.tree.map(lambda x: jax.ShapeDtypeStruct((batch, *np.shape(x)[1:]), x.dtype), data)

    def loss(params, model_state, batch):
        key = jax.random.key(0) if model.uses_key else None
        return model.train_loss(params, model_state, batch, key)[0]

    try:
        out = jax.eval_shape(loss, params, model_state, like)
    except TypeError as e:
        if "positional argument" not in str(e):
            raise
        call = {
            "params": "loss_fn(params, batch)",
            "state": "loss_fn(params, state, batch, key) -> (loss, new_state)",
            "nnx": "loss_fn(model, batch)",
        }[model.kind]
        raise TypeError(
            f"`loss_fn` is called as {call} for this kind of model, and that call failed: {e}"
        ) from None
    if not isinstance(out, jax.ShapeDtypeStruct):
        raise TypeError(
            f"`loss_fn` must return a real scalar, got a {type(out).__name__} "
            f"({jax.tree.structure(out)}); return only the loss (a float of shape ())."
        )
    if out.shape != () or not jnp.issubdtype(out.dtype, jnp.floating):
        what = f"an array of shape {out.shape} and dtype {out.dtype}"
        fix = (
            "reduce it over the batch, e.g. with .mean()"
            if out.shape
            else "compute it in floating point, e.g. .astype(jnp.float32)"
        )
        raise TypeError(f"`loss_fn` must return a real scalar (shape ()), got {what}; {fix}.")


def check_function(name: str, fn: Callable) -> None:
    if not callable(fn):
        raise TypeError(f"`{name}` must be callable, got {fn!r}.")
