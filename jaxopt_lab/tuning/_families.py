"""Optimizer families with their search spaces, as ``jol.compare`` and the command line
take them: ``name -> (make_optimizer, space)``.

The spaces follow the practice of the benchmark papers (Schmidt et al. 2021, "Descending
through a Crowded Valley": the learning rate log-uniform over several decades, momentum
uniform): wide enough that the best setting is inside, for problems whose inputs are of
order one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax
import optax

from jaxopt_lab import optimizers
from jaxopt_lab.search import Space, log_uniform, space, uniform


def _sgd(hp: Mapping[str, jax.Array]) -> optax.GradientTransformation:
    return optimizers.sgd(hp["learning_rate"])


def _momentum(hp: Mapping[str, jax.Array]) -> optax.GradientTransformation:
    return optimizers.momentum(hp["learning_rate"], hp["beta"])


def _nesterov(hp: Mapping[str, jax.Array]) -> optax.GradientTransformation:
    return optimizers.nesterov(hp["learning_rate"], hp["beta"])


def _adam(hp: Mapping[str, jax.Array]) -> optax.GradientTransformation:
    return optimizers.adam(hp["learning_rate"])


def _rmsprop(hp: Mapping[str, jax.Array]) -> optax.GradientTransformation:
    return optimizers.rmsprop(hp["learning_rate"])


def _adagrad(hp: Mapping[str, jax.Array]) -> optax.GradientTransformation:
    return optimizers.adagrad(hp["learning_rate"])


#: name -> (make_optimizer, search space)
FAMILIES: dict[str, tuple[Callable, Space]] = {
    "sgd": (_sgd, space(learning_rate=log_uniform(1e-3, 3.0))),
    "momentum": (
        _momentum,
        space(learning_rate=log_uniform(1e-3, 1.0), beta=uniform(0.0, 0.99)),
    ),
    "nesterov": (
        _nesterov,
        space(learning_rate=log_uniform(1e-3, 1.0), beta=uniform(0.0, 0.99)),
    ),
    "adam": (_adam, space(learning_rate=log_uniform(1e-4, 0.3))),
    "rmsprop": (_rmsprop, space(learning_rate=log_uniform(1e-4, 0.3))),
    "adagrad": (_adagrad, space(learning_rate=log_uniform(1e-3, 3.0))),
}


def family(name: str) -> tuple[Callable, Space]:
    """``(make_optimizer, space)`` of the family ``name`` (one of :data:`FAMILIES`)."""
    if not isinstance(name, str) or name not in FAMILIES:
        raise ValueError(
            f"`name`: no optimizer family {name!r}; choose one of {sorted(FAMILIES)}, or "
            "pass your own (make_optimizer, jol.search.space(...)) pair."
        )
    return FAMILIES[name]
