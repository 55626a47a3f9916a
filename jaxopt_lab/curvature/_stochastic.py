"""Stochastic estimates over the whole spectrum: the trace, and the spectral density (SLQ)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from matfree import stochtrace

from jaxopt_lab._validation import check_count, check_key
from jaxopt_lab.curvature._lanczos import fixed_depth
from jaxopt_lab.curvature._operator import HessianOperator, as_operator


class TraceEstimate(NamedTuple):
    """Hutchinson's estimate of :math:`\\mathrm{tr}\\, H`; unpacks as ``(estimate, se)``."""

    estimate: jax.Array  # scalar: mean of v^T H v over the probes
    standard_error: jax.Array  # scalar: sample std (ddof=1) / sqrt(num_probes)


class SpectralDensity(NamedTuple):
    """Stochastic Lanczos quadrature of the eigenvalue density of H.

    :math:`\\phi(t) \\approx \\sum_{p,i} w_{p,i}\\, \\delta(t - \\theta_{p,i})`, with the Ritz
    values :math:`\\theta_{p,i}` of probe p's tridiagonal matrix as nodes and the squared first
    components of its eigenvectors, divided by the number of probes, as weights: they sum
    to 1, and :math:`\\sum w\\theta = \\frac{1}{P}\\sum_p v_p^\\top H v_p / D`, the Hutchinson
    estimate of :math:`\\mathrm{tr}\\,H / D`.
    """

    nodes: jax.Array  # (num_probes, num_nodes) Ritz values
    weights: jax.Array  # (num_probes, num_nodes) quadrature weights, summing to 1 overall

    def smooth(self, grid: jax.typing.ArrayLike, sigma: float) -> jax.Array:
        """The density convolved with a Gaussian of width ``sigma``, evaluated on ``grid``."""
        grid = jnp.asarray(grid)
        z = (grid[:, None] - self.nodes.reshape(-1)[None, :]) / sigma
        kernel = jnp.exp(-0.5 * z**2) / (sigma * jnp.sqrt(2 * jnp.pi))
        return kernel @ self.weights.reshape(-1)


def _probes(op: HessianOperator, key: jax.Array, num: int) -> jax.Array:
    """``num`` Rademacher probes (matfree's sampler), flattened to ``(num, D)``."""
    samples = stochtrace.sampler_signs(op.params, num=num)(key)
    return jax.vmap(lambda s: ravel_pytree(s)[0])(samples)


@functools.partial(jax.jit, static_argnames=("num_probes", "probe_batch"))
def _trace_jit(op, key, *, num_probes, probe_batch):
    integrand = stochtrace.monte_carlo_trace()
    samples = stochtrace.sampler_signs(op.params, num=num_probes)(key)
    values = jax.lax.map(lambda v: integrand(op.matvec, v), samples, batch_size=probe_batch)
    se = jnp.std(values, ddof=1) / jnp.sqrt(num_probes)
    return TraceEstimate(jnp.mean(values), se)


def trace(
    loss_fn_or_op: Callable[..., jax.Array] | HessianOperator,
    params: Any = None,
    data: Any = None,
    *,
    num_probes: int = 100,
    probe_batch: int = 10,
    batch_size: int | None = None,
    key: jax.Array | None = None,
) -> TraceEstimate:
    r"""Hutchinson's trace estimate with Rademacher probes, and its standard error.

    .. math::
       \mathrm{tr}\,H \approx \frac{1}{P}\sum_{p=1}^P v_p^\top H v_p, \qquad
       v_p \in \{-1, +1\}^D \text{ uniform},

    unbiased because :math:`E[v v^\top] = I`. The trace is the sum of the eigenvalues
    (lecture 004: :math:`H = U \Lambda U^\top`), i.e. :math:`D` times the mean curvature.
    Probes and the per-probe integrand are matfree's (``stochtrace.sampler_signs``,
    ``stochtrace.monte_carlo_trace``).

    Args:
      loss_fn_or_op: a loss function (with ``params``, ``data``) or a :class:`HessianOperator`.
      num_probes: number of probes P (>= 2, for the standard error).
      probe_batch: probes evaluated together (``vmap``); bounds memory.
      batch_size: examples per Hessian-vector product batch.
      key: PRNG key (default ``jax.random.key(0)``).

    Returns:
      :class:`TraceEstimate` ``(estimate, standard_error)``; standard error =
      sample standard deviation / :math:`\sqrt{P}`.
    """
    num_probes = check_count(
        num_probes, "num_probes", minimum=2, fix="Two or more give a standard error; e.g. 100."
    )
    probe_batch = check_count(probe_batch, "probe_batch", fix="E.g. probe_batch=10.")
    op = as_operator(loss_fn_or_op, params, data, batch_size)
    check_key(key, fix=" (or None)")
    key = jax.random.key(0) if key is None else key
    return _trace_jit(op, key, num_probes=num_probes, probe_batch=min(probe_batch, num_probes))


@functools.partial(jax.jit, static_argnames=("num_probes", "num_nodes"))
def _density_jit(op, key, *, num_probes, num_nodes):
    matvec, _, _ = op.flat()
    probes = _probes(op, key, num_probes)

    def one(args):
        v, probe_key = args
        theta, s, _ = fixed_depth(matvec, v, num_nodes, probe_key)
        return theta, s[0, :] ** 2

    keys = jax.random.split(jax.random.fold_in(key, 1), num_probes)
    nodes, weights = jax.lax.map(one, (probes, keys))
    return SpectralDensity(nodes=nodes, weights=weights / num_probes)


def density(
    loss_fn_or_op: Callable[..., jax.Array] | HessianOperator,
    params: Any = None,
    data: Any = None,
    *,
    num_probes: int = 10,
    num_nodes: int = 64,
    batch_size: int | None = None,
    key: jax.Array | None = None,
) -> SpectralDensity:
    r"""The eigenvalue density of H by stochastic Lanczos quadrature (Lin, Saad & Yang 2016).

    For each Rademacher probe :math:`v_p`, ``num_nodes`` Lanczos steps from
    :math:`v_p/\|v_p\|` give :math:`T_p = S_p \Theta_p S_p^\top`, and
    :math:`v_p^\top f(H) v_p / D \approx \sum_i (S_p)_{0i}^2 f(\theta_{p,i})`: a quadrature of the
    spectral measure (lecture 004: the curvature along d is "a weighted average of all the
    eigenvalues"). Averaged over probes. Uses the same probes as :func:`trace` for the same
    ``key``, so the first moment equals ``trace(...).estimate / D``.

    Args:
      loss_fn_or_op: a loss function (with ``params``, ``data``) or a :class:`HessianOperator`.
      num_probes: number of probes.
      num_nodes: Lanczos steps per probe (quadrature nodes), at most D.
      batch_size: examples per Hessian-vector product batch.
      key: PRNG key (default ``jax.random.key(0)``).

    Returns:
      :class:`SpectralDensity` ``(nodes, weights)``; ``.smooth(grid, sigma)`` for plotting.
    """
    num_probes = check_count(num_probes, "num_probes", fix="E.g. num_probes=10.")
    num_nodes = check_count(num_nodes, "num_nodes", fix="E.g. num_nodes=64 (at most D).")
    op = as_operator(loss_fn_or_op, params, data, batch_size)
    if num_nodes > op.size:
        raise ValueError(
            f"`num_nodes` = {num_nodes} exceeds the {op.size} parameters; pass at most {op.size}."
        )
    check_key(key, fix=" (or None)")
    key = jax.random.key(0) if key is None else key
    return _density_jit(op, key, num_probes=num_probes, num_nodes=num_nodes)
