"""The lectures' learning-rate schedules, in their own parameterisation.

Each returns a function ``step -> learning rate`` that any update rule accepts where
it takes a learning rate, as do optax's own optimizers. Values may be traced arrays
(``vmap`` over a grid of initial rates works).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxopt_lab._validation import check_learning_rate, check_positive

Schedule = Callable[[jax.typing.ArrayLike], jax.Array]


def _check_positive(name: str, value) -> None:
    check_positive(
        name,
        value,
        f"Pass a positive, finite number of steps for `{name}` (e.g. 100); for a constant "
        "rate pass the number itself as the learning rate.",
    )


def linear_decay(
    init_value: jax.typing.ArrayLike,
    end_value: jax.typing.ArrayLike,
    transition_steps: jax.typing.ArrayLike,
) -> Schedule:
    r"""Linear decay to a floor, then constant (lectures 002 and 003).

    .. math::
      \epsilon_k = (1 - \tfrac{k}{\tau})\,\epsilon_0 + \tfrac{k}{\tau}\,\epsilon_\tau
      \quad (k \le \tau), \qquad \epsilon_k = \epsilon_\tau \quad (k > \tau).

    Lecture 003 suggests :math:`\tau` of a few hundred epochs and
    :math:`\epsilon_\tau \approx \epsilon_0 / 100`. Same values as
    ``optax.linear_schedule(init_value, end_value, transition_steps)``.

    Args:
      init_value: :math:`\epsilon_0 \ge 0`.
      end_value: :math:`\epsilon_\tau \ge 0`.
      transition_steps: :math:`\tau > 0`.

    Returns:
      A schedule ``k -> epsilon_k``.

    References:
      Lecture 003 (Favaro), "Stochastic Gradient Descent"; lecture 002, "SGD Learning Rate".
    """
    check_learning_rate("init_value", init_value)
    check_learning_rate("end_value", end_value)
    _check_positive("transition_steps", transition_steps)

    def schedule(count):
        frac = jnp.clip(jnp.asarray(count, jnp.float32) / transition_steps, 0.0, 1.0)
        return (1 - frac) * init_value + frac * end_value

    return schedule


def exponential_decay(init_value: jax.typing.ArrayLike, tau: jax.typing.ArrayLike) -> Schedule:
    r"""Exponential decay :math:`a_k = a_0 e^{-k/\tau}` (lecture 002).

    Args:
      init_value: :math:`a_0 \ge 0`.
      tau: the decay time :math:`\tau > 0`, in steps: the rate falls by :math:`e` every
        :math:`\tau` steps.

    Returns:
      A schedule ``k -> a_k``.

    References:
      Lecture 002 (Congeduti), "SGD Learning Rate".
    """
    check_learning_rate("init_value", init_value)
    _check_positive("tau", tau)

    def schedule(count):
        return init_value * jnp.exp(-jnp.asarray(count, jnp.float32) / tau)

    return schedule


def inverse_time(init_value: jax.typing.ArrayLike, tau: jax.typing.ArrayLike) -> Schedule:
    r"""Inverse-time decay :math:`a_k = a_0 / (1 + k/\tau)` (Robbins-Monro, lecture 004).

    Satisfies the conditions for SGD to converge,
    :math:`\sum_k a_k = \infty` and :math:`\sum_k a_k^2 < \infty` (lectures 003, 004).

    Args:
      init_value: :math:`a_0 \ge 0`.
      tau: :math:`\tau > 0`, the step at which the rate has halved.

    Returns:
      A schedule ``k -> a_k``.

    References:
      Lecture 004 (Eskandari), "SGD"; lecture 003; Robbins & Monro, 1951.
    """
    check_learning_rate("init_value", init_value)
    _check_positive("tau", tau)

    def schedule(count):
        return init_value / (1 + jnp.asarray(count, jnp.float32) / tau)

    return schedule
