"""Argument checks and host-side preparation shared by ``train`` and ``sweep``."""

from __future__ import annotations

import math
from typing import Any

from jaxopt_lab._loop._callbacks import Callback
from jaxopt_lab._loop._step import Spec
from jaxopt_lab._validation import leading_axis as leading_axis
from jaxopt_lab._validation import positive_int as positive_int


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
    batch_size = positive_int("batch_size", batch_size)
    if batch_size > num_examples:
        raise ValueError(
            f"`batch_size` = {batch_size} is larger than the data ({num_examples} examples); "
            "pass a smaller one, or `batch_size=None` for full-batch training."
        )
    return batch_size


def check_log_every(log_every: int, steps: int) -> int:
    log_every = positive_int("log_every", log_every)
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
    chunk_size = positive_int("chunk_size", chunk_size)
    return math.ceil(chunk_size / log_every) * log_every


def check_callbacks(callbacks: Any) -> tuple:
    callbacks = tuple(callbacks)
    for i, cb in enumerate(callbacks):
        if not isinstance(cb, Callback):
            raise TypeError(
                f"`callbacks[{i}]` = {cb!r} is not a Callback: it needs an `every` int, "
                "`init(params)` and `__call__(step, params, state) -> (state, metrics)`."
            )
        positive_int(f"callbacks[{i}].every", cb.every)
    return callbacks


def check_divergence_factor(factor: float | None) -> float | None:
    if factor is None:
        return None
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
) -> Spec:
    """The checked :class:`Spec` of a run (``steps`` checked before the others)."""
    steps = positive_int("steps", steps)
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
    )
