r"""``gradient_noise``: how the noise of a minibatch gradient shrinks with the batch size.

A minibatch gradient is the mean of :math:`S` per-example gradients, so its variance is
the per-example variance divided by :math:`S` (Grosse & Ba, "CSC421 Lectures 7-8:
Optimization", lecture 000: :math:`\mathrm{Var}[\frac1S\sum_i \partial L^{(i)}] =
\frac1S \mathrm{Var}[\partial L^{(i)}]`; Goodfellow et al. ch. 8 as taught by Favaro,
lecture 003: the standard error of a mean of :math:`m` samples is
:math:`\sigma/\sqrt{m}`, so a batch :math:`m` times larger costs :math:`m` times more but
is only :math:`\sqrt{m}` times less noisy). The minibatch gradient is an unbiased estimate
of the full-batch one (Eskandari, "Deep Learning (Optimization)", lecture 004), and the
batch size is the hyperparameter that trades noise per update against updates per second
(Congeduti, "Optimization", lecture 002).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxopt_lab._types import Params
from jaxopt_lab._validation import check_count, check_key, leading_axis


class GradientNoise(NamedTuple):
    """What :func:`gradient_noise` returns (NumPy arrays and Python floats)."""

    batch_sizes: np.ndarray  # int64 (k,): the batch sizes S, as given
    variance: np.ndarray  # float64 (k,): measured E|g_B - G|^2 over the sampled minibatches
    variance_stderr: np.ndarray  # float64 (k,): standard error of `variance` (sampling noise)
    predicted_variance: np.ndarray  # float64 (k,): tr(Sigma)/S * (N - S)/(N - 1)
    trace_sigma: float  # tr(Sigma) = (1/N) sum_i |g_i - G|^2, per-example gradient variance
    grad_norm_sq: float  # |G|^2, G = (1/N) sum_i g_i the full-data gradient
    noise_scale: float  # B_simple = tr(Sigma)/|G|^2 (inf when G = 0 and tr(Sigma) > 0)
    num_examples: int  # N, the examples in `data`
    num_batches: int  # minibatches sampled per batch size


def _one_example_grad(loss_fn: Callable, params: Params, example: Any) -> jax.Array:
    """The flattened gradient of ``loss_fn`` on a batch holding only ``example``."""
    batch = jax.tree.map(lambda x: x[None], example)
    return ravel_pytree(jax.grad(loss_fn)(params, batch))[0]


@functools.partial(jax.jit, static_argnums=(0, 3))
def _per_example_stats(
    loss_fn: Callable, params: Params, data: Any, max_chunk: int
) -> tuple[jax.Array, jax.Array]:
    r"""``(G, N tr(Sigma))``: mean and total squared deviation of the per-example gradients.

    The examples are split into equal chunks of at most ``max_chunk`` (a vmap of the
    gradient over each chunk, one compiled body for all); the few padding examples that
    fill the last chunk repeat the first ones and have weight 0. Each chunk contributes
    its count :math:`n_c`, mean :math:`m_c` and squared deviation :math:`M_c` about that
    mean, combined without cancellation as
    :math:`\sum_i |g_i - G|^2 = \sum_c \big(M_c + n_c |m_c - G|^2\big)`.
    """
    n = leading_axis("data", data)
    num_chunks = -(-n // max_chunk)
    chunk = -(-n // num_chunks)
    pad = num_chunks * chunk - n  # < num_chunks <= n
    padded = jax.tree.map(lambda x: jnp.concatenate([x, x[:pad]]) if pad else x, data)
    chunks = jax.tree.map(lambda x: x.reshape(num_chunks, chunk, *x.shape[1:]), padded)
    weights = (jnp.arange(num_chunks * chunk) < n).reshape(num_chunks, chunk)
    grads = jax.vmap(lambda ex: _one_example_grad(loss_fn, params, ex))

    def stats(part_and_weight):
        part, w = part_and_weight
        g = grads(part)
        w = w.astype(g.dtype)
        count = jnp.sum(w)
        mean = (w @ g) / jnp.maximum(count, 1.0)
        return count, mean, jnp.sum(w * jnp.sum((g - mean[None, :]) ** 2, axis=1))

    if num_chunks == 1:
        counts, means, m2s = (
            t[None] for t in stats(jax.tree.map(lambda x: x[0], (chunks, weights)))
        )
    else:
        counts, means, m2s = jax.lax.map(stats, (chunks, weights))
    full_grad = (counts @ means) / n
    spread = jnp.sum(counts * jnp.sum((means - full_grad[None, :]) ** 2, axis=1))
    return full_grad, jnp.sum(m2s) + spread


@functools.partial(jax.jit, static_argnums=(0, 5))
def _minibatch_sq_dists(
    loss_fn: Callable,
    params: Params,
    data: Any,
    full_grad: jax.Array,
    indices: jax.Array,
    per_step: int,
) -> jax.Array:
    """``|g_B - G|^2`` for the minibatch of each row of ``indices`` (``(b, S)`` int)."""

    def one(idx):
        batch = jax.tree.map(lambda x: jnp.take(x, idx, axis=0), data)
        g = ravel_pytree(jax.grad(loss_fn)(params, batch))[0]
        return jnp.sum((g - full_grad) ** 2)

    if per_step == indices.shape[0]:
        return jax.vmap(one)(indices)
    return jax.lax.map(one, indices, batch_size=per_step)


def _draw_minibatches(rng: np.random.Generator, n: int, size: int, count: int) -> np.ndarray:
    """``count`` index sets of ``size`` out of ``range(n)``, each without replacement.

    Drawn on the host (NumPy), not by ``jax.random``: a permutation compiled for every
    shape would cost more than the whole measurement on a small problem.
    """
    return np.stack([rng.choice(n, size, replace=False) for _ in range(count)]).astype(np.int32)


def _check_batch_sizes(batch_sizes: Any, n: int) -> np.ndarray:
    fix = "Pass batch sizes S with 1 <= S <= N, e.g. batch_sizes=(8, 32, 128)."
    if isinstance(batch_sizes, int | np.integer) and not isinstance(batch_sizes, bool):
        batch_sizes = (batch_sizes,)
    if isinstance(batch_sizes, np.ndarray | jax.Array):
        batch_sizes = np.asarray(batch_sizes).ravel().tolist()
    if not isinstance(batch_sizes, Sequence) or isinstance(batch_sizes, str):
        raise TypeError(f"`batch_sizes` must be a sequence of whole numbers, got {batch_sizes!r}.")
    if not batch_sizes:
        raise ValueError(f"`batch_sizes` is empty. {fix}")
    sizes = [check_count(s, "batch_sizes", fix=fix) for s in batch_sizes]
    too_big = [s for s in sizes if s > n]
    if too_big:
        raise ValueError(
            f"`batch_sizes` holds {too_big}, more than the N = {n} examples in `data`: "
            f"minibatches are drawn without replacement, so S <= N. Drop those sizes or pass "
            f"sizes up to {n}."
        )
    return np.asarray(sizes, np.int64)


def _check_params(params: Params) -> None:
    leaves = jax.tree_util.tree_leaves_with_path(params)
    if not leaves:
        raise ValueError(
            f"`params` holds no arrays ({params!r}); pass the parameters as a pytree of float "
            "arrays."
        )
    for path, leaf in leaves:
        dtype = jnp.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"`params` has a leaf {jax.tree_util.keystr(path) or '(the root)'} of dtype "
                f"{dtype}: gradients are taken with respect to real parameters. Cast it, e.g. "
                "jax.tree.map(lambda x: x.astype(jnp.float32), params)."
            )


def _check_loss(loss_fn: Any, params: Params, data: Any) -> None:
    if not callable(loss_fn):
        raise TypeError(f"`loss_fn` must be callable as loss_fn(params, batch), got {loss_fn!r}.")
    one = jax.tree.map(lambda x: jax.ShapeDtypeStruct((1, *np.shape(x)[1:]), x.dtype), data)
    out = jax.eval_shape(loss_fn, params, one)
    shape, dtype = getattr(out, "shape", None), getattr(out, "dtype", None)
    if shape != () or not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"`loss_fn` must return a real scalar (the mean loss over the batch), got "
            f"{jax.tree.structure(out) if shape is None else f'shape {shape}, dtype {dtype}'}; "
            "reduce it with .mean() over the batch."
        )


def gradient_noise(
    loss_fn: Callable[[Params, Any], jax.Array],
    params: Params,
    data: Any,
    batch_sizes: Sequence[int] | int = (8, 32, 128, 512),
    *,
    num_batches: int = 64,
    key: jax.Array | None = None,
) -> GradientNoise:
    r"""Measures the noise of minibatch gradients against the :math:`1/S` law.

    With per-example gradients :math:`g_i = \nabla \ell(\theta; x_i)` (the gradient of
    ``loss_fn`` on a batch of one example), the full-data gradient
    :math:`G = \frac1N \sum_i g_i` and the per-example covariance

    .. math::
       \Sigma = \frac1N \sum_{i=1}^N (g_i - G)(g_i - G)^\top,

    a minibatch :math:`B` of :math:`S` examples drawn uniformly *without* replacement has
    gradient :math:`g_B = \frac1S \sum_{i \in B} g_i` with

    .. math::
       \mathbb{E}\,|g_B - G|^2 = \frac{\operatorname{tr}\Sigma}{S} \cdot \frac{N - S}{N - 1},

    the :math:`1/S` law of Grosse & Ba, "CSC421 Lectures 7-8: Optimization" (lecture 000)
    and of the standard error :math:`\sigma/\sqrt m` in Goodfellow et al. ch. 8 as taught
    by Favaro (lecture 003), times the finite-population correction. The correction makes
    the formula exact with :math:`\Sigma` normalised by :math:`1/N` (the population
    covariance; with the :math:`1/(N-1)` sample covariance :math:`\Sigma'` it reads
    :math:`\operatorname{tr}\Sigma' (1/S - 1/N)`, the same number): it is 1 at
    :math:`S = 1` and 0 at :math:`S = N`, where the minibatch is the whole data set.

    The noise scale of McCandlish et al. (2018),
    :math:`B_\text{simple} = \operatorname{tr}\Sigma / |G|^2`, compares the two: for
    :math:`S \ll B_\text{simple}` the noise dominates and a larger batch buys nearly
    proportional progress per step; beyond it the minibatch gradient is already close to
    :math:`G` and larger batches stop paying (lecture 000: "large batches: no further
    benefit from variance reduction").

    ``variance`` is measured, not predicted: for each :math:`S`, ``num_batches``
    minibatches are drawn (each uniformly at random, without replacement within the
    batch) and :math:`|g_B - G|^2` (with :math:`g_B` = ``grad(loss_fn)(params, batch)``)
    is averaged. ``trace_sigma`` is exact, from every per-example gradient (``vmap`` of
    ``grad`` over chunks of examples, combined without cancellation).

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar``, the *mean* loss over ``batch`` (with
        a sum, :math:`g_B` is not an average and the law does not hold).
      params: the point, a pytree of float arrays.
      data: a pytree of arrays with a shared leading example axis, e.g.
        ``jol.datasets.digits().train``.
      batch_sizes: the sizes :math:`S` to measure, each in ``[1, N]``.
      num_batches: minibatches sampled per batch size (the relative sampling error of
        ``variance`` falls like :math:`1/\sqrt{\text{num\_batches}}`; see
        ``variance_stderr``).
      key: PRNG key for the minibatches (default ``jax.random.key(0)``); its bits seed the
        NumPy generator that draws the indices on the host, so the same key gives the same
        minibatches.

    Returns:
      A :class:`GradientNoise`.

    Raises:
      TypeError, ValueError: naming the argument (``batch_sizes`` above :math:`N`, a
      ``loss_fn`` that does not return a scalar, integer ``params``, ...).

    Example:
      >>> import jax
      >>> import jaxopt_lab as jol
      >>> problem = jol.problems.logistic()
      >>> params = problem.init_fn(jax.random.key(0))
      >>> noise = jol.diagnostics.gradient_noise(problem.loss_fn, params, problem.data)
      >>> bool(noise.variance[0] > noise.variance[-1])
      True

    References:
      McCandlish, Kaplan, Amodei & the OpenAI Dota Team (2018), "An Empirical Model of
      Large-Batch Training", arXiv:1812.06162.
    """
    n = leading_axis("data", data)
    sizes = _check_batch_sizes(batch_sizes, n)
    num_batches = check_count(num_batches, "num_batches", fix="E.g. num_batches=64.")
    check_key(key, fix=" (or None)")
    key = jax.random.key(0) if key is None else key
    _check_params(params)
    _check_loss(loss_fn, params, data)
    data = jax.tree.map(jnp.asarray, data)  # on the device once, for every batch size

    dim = int(sum(np.size(x) for x in jax.tree.leaves(params)))
    chunk = max(1, min(n, 4096, (1 << 22) // max(dim, 1)))  # <= 4M gradient entries
    full_grad, sq_dev = _per_example_stats(loss_fn, params, data, chunk)
    trace_sigma = float(sq_dev) / n
    grad_norm_sq = float(np.sum(np.asarray(full_grad, np.float64) ** 2))

    rng = np.random.default_rng(np.asarray(jax.random.key_data(key), np.uint32).ravel())
    variance, stderr = [], []
    for size in sizes.tolist():
        indices = _draw_minibatches(rng, n, size, num_batches)
        per_step = max(1, min(num_batches, 8192 // size))
        while num_batches % per_step:  # a divisor: one compiled loop body, no remainder
            per_step -= 1
        dists = np.asarray(
            _minibatch_sq_dists(loss_fn, params, data, full_grad, indices, per_step), np.float64
        )
        variance.append(dists.mean())
        spread = dists.std(ddof=1) if num_batches > 1 else np.nan
        stderr.append(spread / np.sqrt(num_batches))
    predicted = np.array(
        [trace_sigma / s * ((n - s) / (n - 1) if n > 1 else 0.0) for s in sizes.tolist()]
    )
    if grad_norm_sq > 0:
        noise_scale = trace_sigma / grad_norm_sq
    else:
        noise_scale = np.inf if trace_sigma > 0 else np.nan
    return GradientNoise(
        batch_sizes=sizes,
        variance=np.asarray(variance, np.float64),
        variance_stderr=np.asarray(stderr, np.float64),
        predicted_variance=predicted,
        trace_sigma=trace_sigma,
        grad_norm_sq=grad_norm_sq,
        noise_scale=float(noise_scale),
        num_examples=n,
        num_batches=num_batches,
    )
