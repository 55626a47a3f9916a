"""Argument checks and host-side preparation shared by ``train`` and ``sweep``."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab._validation import leading_axis as leading_axis
from jaxopt_lab._validation import positive_int as positive_int
from jaxopt_lab.train._callbacks import Callback


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


def to_device(tree: Any) -> Any:
    """The leaves of ``tree`` as JAX arrays (transferred once, not on every call)."""
    return jax.tree.map(jnp.asarray, tree)


def monitoring_subset(data: Any, num_examples: int, monitor_size: int) -> Any:
    """A fixed subset of ``data`` (the same for every key and run) for the train loss.

    All of ``data`` when ``monitor_size >= num_examples``; else ``monitor_size``
    examples drawn once without replacement with NumPy seed 0, in data order (gathered
    where ``data`` lives: NumPy arrays on the host, JAX arrays on their device).
    """
    monitor_size = positive_int("monitor_size", monitor_size)
    if monitor_size >= num_examples:
        return data
    idx = np.sort(np.random.default_rng(0).choice(num_examples, monitor_size, replace=False))
    return jax.tree.map(lambda a: a[idx], data)
