r"""Batch normalization as the lectures write it, to check layers against and to reason with.

Lecture 001 (LeCun with Defazio, NYU, "Normalization layers") and lecture 003
(Goodfellow et al. ch. 8 as taught by Favaro, "Batch Normalization") give the same
transform of a minibatch :math:`H \in \mathbb R^{m \times d}` (or of the channels of
images, statistics over batch and space):

.. math::

   \mu = \frac1m \sum_j H_{j\cdot}, \qquad
   \sigma^2 = \frac1m \sum_j (H_{j\cdot} - \mu)^2, \qquad
   \hat H = \gamma \frac{H - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta,

with the biased (1/m) batch variance and :math:`\epsilon` inside the square root;
``flax.nnx.BatchNorm`` in training mode computes the same (the tests check it).

Lecture 003's reparametrization argument: for a linear layer before the normalization,
:math:`\hat H` does not change when the layer's weights are scaled (with
:math:`\epsilon = 0` exactly; with :math:`\epsilon > 0` nearly, as long as
:math:`\epsilon \ll \sigma^2`), so a loss of :math:`\text{BN}(x w_1 w_2)` has zero
gradient with respect to :math:`w_1` and :math:`w_2`: only :math:`\gamma` and
:math:`\beta` move, and the three equivalent parametrizations of the lecture's example
get the same update.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["BatchNormOutput", "batch_norm"]


class BatchNormOutput(NamedTuple):
    """What :func:`batch_norm` computes."""

    out: jax.Array  # gamma * normalized + beta, the shape of the input
    normalized: jax.Array  # (H - mean) / sqrt(var + eps)
    mean: jax.Array  # the batch mean per feature (the axes not reduced)
    var: jax.Array  # the biased (1/m) batch variance per feature


def batch_norm(
    h: jax.typing.ArrayLike,
    gamma: jax.typing.ArrayLike = 1.0,
    beta: jax.typing.ArrayLike = 0.0,
    *,
    eps: float = 1e-5,
    axis: int | Sequence[int] = 0,
) -> BatchNormOutput:
    r"""Batch normalization of ``h`` over ``axis`` (the batch, and space for images).

    :math:`\hat H = \gamma (H - \mu) / \sqrt{\sigma^2 + \epsilon} + \beta` with the batch
    mean :math:`\mu` and the biased batch variance :math:`\sigma^2` over ``axis``
    (lectures 001 and 003; see the module docstring).

    Args:
      h: the activations, e.g. ``(batch, features)`` or ``(batch, height, width,
        channels)`` with ``axis=(0, 1, 2)``.
      gamma, beta: the learned scale and shift, broadcast against a feature vector
        (scalars or one value per feature).
      eps: added to the variance inside the square root (``nnx.BatchNorm``'s
        ``epsilon``, default ``1e-5`` as there).
      axis: the axes the statistics are taken over.

    Returns:
      A :class:`BatchNormOutput` ``(out, normalized, mean, var)``.

    Example:
      >>> x = jnp.array([[1.0, 10.0], [3.0, 30.0]])
      >>> jol.normalization.batch_norm(x, eps=0.0).out
      Array([[-1., -1.],
             [ 1.,  1.]], dtype=float32)
    """
    h = jnp.asarray(h)
    if not jnp.issubdtype(h.dtype, jnp.floating):
        raise TypeError(f"`h` must be a float array, got dtype {h.dtype}.")
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    if not axes or any(not isinstance(a, int) or not -h.ndim <= a < h.ndim for a in axes):
        raise ValueError(
            f"`axis` must name axes of `h` (which has {h.ndim}), got {axis!r}; e.g. axis=0 "
            "for (batch, features), axis=(0, 1, 2) for images (batch, height, width, channels)."
        )
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not eps >= 0:
        raise ValueError(f"`eps` must be a number >= 0, got {eps!r}; e.g. 1e-5.")
    mean = jnp.mean(h, axis=axes, keepdims=True)
    var = jnp.mean(jnp.square(h - mean), axis=axes, keepdims=True)
    normalized = (h - mean) * jax.lax.rsqrt(var + jnp.asarray(eps, h.dtype))

    def per_feature(value, name):
        value = jnp.asarray(value, h.dtype)
        if value.ndim == 0:
            return value
        if value.size != mean.size:
            raise ValueError(
                f"`{name}` must be a scalar or hold one value per feature ({mean.size}), got "
                f"shape {value.shape}."
            )
        return jnp.reshape(value, mean.shape)

    out = per_feature(gamma, "gamma") * normalized + per_feature(beta, "beta")
    return BatchNormOutput(out, normalized, jnp.squeeze(mean, axes), jnp.squeeze(var, axes))
