"""Where the examples of each step come from: minibatch order and the monitoring subset."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def key_words(key: jax.Array) -> tuple[int, ...]:
    """The raw 32-bit words of a PRNG key (typed ``jax.random.key`` or legacy uint32)."""
    if jax.dtypes.issubdtype(jnp.asarray(key).dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return tuple(int(w) for w in np.asarray(key, np.uint32).ravel())


def typed_key(key: jax.Array | None) -> jax.Array:
    """``key`` as a typed ``jax.random.key`` (legacy uint32 keys wrapped; None: key 0)."""
    if key is None:
        return jax.random.key(0)
    key = jnp.asarray(key)
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    return jax.random.wrap_key_data(key.astype(jnp.uint32))


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


def to_device(tree: Any) -> Any:
    """The leaves of ``tree`` as JAX arrays (transferred once, not on every call)."""
    return jax.tree.map(jnp.asarray, tree)


def monitoring_subset(data: Any, num_examples: int, monitor_size: int) -> Any:
    """A fixed subset of ``data`` (the same for every key and run) for the train loss.

    All of ``data`` when ``monitor_size >= num_examples``; else ``monitor_size``
    examples drawn once without replacement with NumPy seed 0, in data order (gathered
    where ``data`` lives: NumPy arrays on the host, JAX arrays on their device).
    ``monitor_size`` is already checked (:func:`._checks.check_monitor_size`).
    """
    if monitor_size >= num_examples:
        return data
    idx = np.sort(np.random.default_rng(0).choice(num_examples, monitor_size, replace=False))
    return jax.tree.map(lambda a: a[idx], data)


def is_key(x: Any) -> bool:
    """Whether ``x`` is an array of typed PRNG keys."""
    return jax.dtypes.issubdtype(getattr(x, "dtype", np.float32), jax.dtypes.prng_key)


def host_take(tree: Any, index: Any) -> Any:
    """``x[index]`` of every leaf, on the host (PRNG keys stay typed JAX arrays)."""
    return jax.tree.map(lambda x: x[index] if is_key(x) else np.asarray(x)[index], tree)


def concatenate(trees: list) -> Any:
    """Leaf-wise concatenation along the leading axis (PRNG keys included)."""
    return jax.tree.map(
        lambda *xs: jnp.concatenate(xs) if is_key(xs[0]) else np.concatenate(xs), *trees
    )


def stack_take(trees: list, which: np.ndarray) -> Any:
    """Leaf-wise ``stack(trees)[which]`` (PRNG keys included)."""
    return jax.tree.map(
        lambda *xs: jnp.stack(xs)[which] if is_key(xs[0]) else np.stack(xs)[which], *trees
    )
