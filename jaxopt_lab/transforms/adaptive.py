"""Adaptive per-coordinate scalings: AdaGrad, RMSProp, Adam, AdaDelta.

Each block rescales the gradient; the named optimizers in :mod:`jaxopt_lab.optimizers`
multiply by the learning rate afterwards. Where the lectures place the stabilising
constant differently, the choice is a static switch and the default follows the lecture
named in the docstring.

Half precision: for bfloat16 and float16 parameters the moments are kept, and the
arithmetic done, in float32, and each update is returned in the parameters' dtype
(float16 squares overflow beyond 256, and a bfloat16 ``0.999 * r`` rounds back to ``r``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_lab._validation import check_bool, check_nonnegative, check_unit_interval
from jaxopt_lab.transforms._common import (
    cast_like,
    check_float_params,
    check_update_args,
    out_dtypes,
    safe_increment,
    zeros_moment,
)
from jaxopt_lab.transforms.momentum import ema_update


class AdagradState(NamedTuple):
    """State of :func:`scale_by_adagrad`."""

    sum_of_squares: optax.Updates  # like params (float32 for half precision): r = sum g*g


class RmsState(NamedTuple):
    """State of :func:`scale_by_rms`."""

    nu: optax.Updates  # like params (float32 for half precision): r, the EMA of g*g


class AdamState(NamedTuple):
    """State of :func:`scale_by_adam`."""

    count: jax.Array  # int32 scalar: number of updates so far (t)
    mu: optax.Updates  # like params (float32 for half precision): s, the EMA of g
    nu: optax.Updates  # like params (float32 for half precision): r, the EMA of g*g


class AdadeltaState(NamedTuple):
    """State of :func:`scale_by_adadelta`."""

    e_g: optax.Updates  # like params (float32 for half precision): E[g^2]
    e_x: optax.Updates  # like params (float32 for half precision): E[dx^2]


def scale_by_adagrad(eps: jax.typing.ArrayLike = 1e-7) -> optax.GradientTransformationExtraArgs:
    r"""AdaGrad scaling :math:`r \leftarrow r + g \odot g,\; u = g / (\delta + \sqrt{r})`.

    As in lectures 003 and 004 (Goodfellow alg. 8.4): :math:`r` starts at 0 and
    :math:`\delta = 10^{-7}` sits outside the square root. (``optax.adagrad`` puts its
    epsilon inside the root and starts at 0.1; the two agree for ``eps=0`` and
    ``initial_accumulator_value=0``.)

    Args:
      eps: :math:`\delta \ge 0`. Checked when concrete; traced values are not.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    References:
      Lecture 003 (Favaro), "AdaGrad"; lecture 004 (Eskandari), algorithm 8.4;
      Duchi et al., 2011.
    """
    check_nonnegative("eps", eps, "1e-7")

    def init_fn(params):
        check_float_params(params)
        return AdagradState(sum_of_squares=zeros_moment(params))

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        check_update_args(updates, state.sum_of_squares, params)
        r = jax.tree.map(
            lambda g, r: r + jnp.square(jnp.asarray(g, r.dtype)), updates, state.sum_of_squares
        )

        def step(g, r, dtype):
            return (jnp.asarray(g, r.dtype) / (cast_like(eps, r) + jnp.sqrt(r))).astype(dtype)

        updates = jax.tree.map(step, updates, r, out_dtypes(updates, params))
        return updates, AdagradState(sum_of_squares=r)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _rsqrt_scale(g: jax.Array, r: jax.Array, eps: jax.typing.ArrayLike, eps_in_sqrt: bool):
    eps = cast_like(eps, r)
    if eps_in_sqrt:
        return g * jax.lax.rsqrt(r + eps)
    return g / (jnp.sqrt(r) + eps)


def scale_by_rms(
    decay: jax.typing.ArrayLike = 0.9,
    eps: jax.typing.ArrayLike = 1e-6,
    *,
    eps_in_sqrt: bool = True,
) -> optax.GradientTransformationExtraArgs:
    r"""RMSProp scaling :math:`r \leftarrow \rho r + (1 - \rho) g \odot g`.

    With ``eps_in_sqrt=True`` (lectures 003/004, Goodfellow alg. 8.5):
    :math:`u = g / \sqrt{\delta + r}`; with ``False`` (lecture 001):
    :math:`u = g / (\sqrt{r} + \epsilon)`. :math:`r` starts at 0.

    Args:
      decay: :math:`\rho \in [0, 1)`.
      eps: the stabilising constant, :math:`\ge 0`.
      eps_in_sqrt: where ``eps`` goes. Static.

    Returns:
      An ``optax.GradientTransformationExtraArgs``. Concrete hyperparameters are checked
      at construction; traced ones are not.

    References:
      Lecture 003 (Favaro), "RMSProp"; lecture 004, algorithm 8.5; lecture 001,
      "RMSprop"; Tieleman & Hinton, 2012.
    """
    check_unit_interval("decay", decay)
    check_nonnegative("eps", eps, "1e-6")
    check_bool("eps_in_sqrt", eps_in_sqrt)

    def init_fn(params):
        check_float_params(params)
        return RmsState(nu=zeros_moment(params))

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        check_update_args(updates, state.nu, params)
        nu = jax.tree.map(
            lambda g, r: ema_update(jnp.square(jnp.asarray(g, r.dtype)), r, decay),
            updates,
            state.nu,
        )

        def step(g, r, dtype):
            return _rsqrt_scale(jnp.asarray(g, r.dtype), r, eps, eps_in_sqrt).astype(dtype)

        updates = jax.tree.map(step, updates, nu, out_dtypes(updates, params))
        return updates, RmsState(nu=nu)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def scale_by_adam(
    b1: jax.typing.ArrayLike = 0.9,
    b2: jax.typing.ArrayLike = 0.999,
    eps: jax.typing.ArrayLike = 1e-8,
    *,
    bias_correction: bool = True,
) -> optax.GradientTransformationExtraArgs:
    r"""Adam scaling (lecture 003, with bias correction; lecture 001 without).

    .. math::
      s \leftarrow \rho_1 s + (1-\rho_1) g,\quad r \leftarrow \rho_2 r + (1-\rho_2) g\odot g,\\
      \hat s = s / (1 - \rho_1^t),\quad \hat r = r / (1 - \rho_2^t),\quad
      u = \hat s / (\delta + \sqrt{\hat r}).

    With ``bias_correction=False`` it is lecture 001's "steady state" Adam,
    :math:`u = s / (\sqrt{r} + \epsilon)`.

    Args:
      b1: :math:`\rho_1 \in [0, 1)`, decay of the first moment.
      b2: :math:`\rho_2 \in [0, 1)`, decay of the second moment.
      eps: :math:`\delta \ge 0`, added outside the square root.
      bias_correction: divide by :math:`1 - \rho^t`. Static.

    Returns:
      An ``optax.GradientTransformationExtraArgs``; equals ``optax.scale_by_adam`` when
      ``bias_correction=True``. Concrete hyperparameters are checked; traced ones are not.

    References:
      Lecture 003 (Favaro), "Adam"; lecture 001, "Adam"; Kingma & Ba, 2015.
    """
    check_unit_interval("b1", b1)
    check_unit_interval("b2", b2, "0.999")
    check_nonnegative("eps", eps)
    check_bool("bias_correction", bias_correction)

    def init_fn(params):
        check_float_params(params)
        return AdamState(
            count=jnp.zeros([], jnp.int32), mu=zeros_moment(params), nu=zeros_moment(params)
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        check_update_args(updates, state.mu, params)
        mu = jax.tree.map(lambda g, m: ema_update(g, m, b1), updates, state.mu)
        nu = jax.tree.map(
            lambda g, v: ema_update(jnp.square(jnp.asarray(g, v.dtype)), v, b2), updates, state.nu
        )
        count = safe_increment(state.count)
        if bias_correction:
            # integer powers, as optax does: pow(b, float(t)) rounds differently
            c1 = 1 - jax.lax.pow(jnp.asarray(b1, jnp.float32), count)
            c2 = 1 - jax.lax.pow(jnp.asarray(b2, jnp.float32), count)

            def step(m, v):
                m_hat = m / cast_like(c1, m)
                v_hat = v / cast_like(c2, v)
                return m_hat / (jnp.sqrt(v_hat) + cast_like(eps, v))

        else:

            def step(m, v):
                return m / (jnp.sqrt(v) + cast_like(eps, v))

        dtypes = out_dtypes(updates, params)
        updates = jax.tree.map(lambda m, v, d: step(m, v).astype(d), mu, nu, dtypes)
        return updates, AdamState(count=count, mu=mu, nu=nu)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def scale_by_adadelta(
    rho: jax.typing.ArrayLike = 0.95, eps: jax.typing.ArrayLike = 1e-6
) -> optax.GradientTransformationExtraArgs:
    r"""AdaDelta scaling (Zeiler, 2012, algorithm 1).

    .. math::
      E[g^2] \leftarrow \rho E[g^2] + (1-\rho) g^2,\quad
      u = \frac{\sqrt{E[\Delta x^2] + \epsilon}}{\sqrt{E[g^2] + \epsilon}}\, g,\quad
      E[\Delta x^2] \leftarrow \rho E[\Delta x^2] + (1-\rho) u^2.

    The lectures list AdaDelta among the popular choices (lecture 003) without a formula;
    this is the paper's. The accumulated :math:`\Delta x` is the update before any
    learning rate, as in ``optax.scale_by_adadelta``.

    Args:
      rho: decay in [0, 1); Zeiler's default 0.95.
      eps: :math:`\epsilon \ge 0`; Zeiler's default 1e-6.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    References:
      Zeiler, "ADADELTA: An Adaptive Learning Rate Method", 2012; lecture 003.
    """
    check_unit_interval("rho", rho, "0.95")
    check_nonnegative("eps", eps, "1e-6")

    def init_fn(params):
        check_float_params(params)
        return AdadeltaState(e_g=zeros_moment(params), e_x=zeros_moment(params))

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        check_update_args(updates, state.e_g, params)
        e_g = jax.tree.map(
            lambda g, e: ema_update(jnp.square(jnp.asarray(g, e.dtype)), e, rho), updates, state.e_g
        )

        def step(g, eg, ex):
            e = cast_like(eps, eg)
            return jnp.sqrt(ex + e) * jax.lax.rsqrt(eg + e) * jnp.asarray(g, eg.dtype)

        steps = jax.tree.map(step, updates, e_g, state.e_x)
        e_x = jax.tree.map(lambda u, e: ema_update(jnp.square(u), e, rho), steps, state.e_x)
        dtypes = out_dtypes(updates, params)
        updates = jax.tree.map(lambda u, d: u.astype(d), steps, dtypes)
        return updates, AdadeltaState(e_g=e_g, e_x=e_x)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
