"""Type aliases shared across jaxopt_lab."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import optax

Params = Any
"""A pytree of parameter arrays."""

Updates = Any
"""A pytree of updates with the structure of :data:`Params`."""

OptState = optax.OptState
"""The state of a gradient transformation."""

ScalarOrSchedule = jax.typing.ArrayLike | Callable[[jax.typing.ArrayLike], jax.typing.ArrayLike]
"""A learning rate: a scalar (possibly a traced array) or a schedule ``step -> value``."""

LossFn = Callable[..., jax.Array]
"""``loss_fn(params, *args) -> scalar``."""
