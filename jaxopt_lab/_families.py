"""Optimizer families for sweeps from the command line: a name -> ``make_optimizer(hparams)``.

Every family reads ``hparams["learning_rate"]``; the families with a momentum-like
coefficient read it as ``hparams[family.momentum_key]`` when the grid has that key (and
use the optimizer's default otherwise).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import jax
import optax

from jaxopt_lab import optimizers


@dataclasses.dataclass(frozen=True)
class Family:
    """A named optimizer with its learning rate and optional momentum-like coefficient."""

    name: str
    build: Callable[..., optax.GradientTransformation]  # build(lr) or build(lr, coefficient)
    momentum_key: str | None = None  # grid key of the coefficient, None if there is none
    default_momenta: tuple[float, ...] = ()  # swept by default (empty: the optimizer default)
    about: str = ""  # what the coefficient is, for --help

    def grid(
        self, learning_rates: list[float], momenta: list[float] | None
    ) -> dict[str, list[float]]:
        """The sweep grid: learning rates, and momenta when the family takes them."""
        grid = {"learning_rate": list(learning_rates)}
        momenta = self.default_momenta if momenta is None else momenta
        if momenta:
            if self.momentum_key is None:
                raise ValueError(
                    f"{self.name} has no momentum coefficient; drop the momenta or pick "
                    f"one of {', '.join(with_momentum())}"
                )
            grid[self.momentum_key] = list(momenta)
        return grid

    def make_optimizer(self, grid: Mapping[str, object]):
        """``make_optimizer(hparams)`` for ``jol.sweep``, reading exactly the keys of ``grid``."""
        key = self.momentum_key if self.momentum_key in grid else None
        build = self.build

        def make_optimizer(hparams: Mapping[str, jax.Array]) -> optax.GradientTransformation:
            if key is None:
                return build(hparams["learning_rate"])
            return build(hparams["learning_rate"], hparams[key])

        return make_optimizer


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("sgd", optimizers.sgd),
        Family(
            "momentum",
            lambda lr, beta=0.9: optimizers.momentum(lr, beta),
            "momentum",
            (0.9,),
            "beta of heavy-ball momentum",
        ),
        Family(
            "nesterov",
            lambda lr, beta=0.9: optimizers.nesterov(lr, beta),
            "momentum",
            (0.9,),
            "beta of Nesterov momentum",
        ),
        Family("adam", lambda lr, b1=0.9: optimizers.adam(lr, b1), "b1", (), "Adam's b1"),
        Family(
            "rmsprop",
            lambda lr, m=None: optimizers.rmsprop(lr, momentum=m),
            "momentum",
            (),
            "RMSProp's velocity coefficient",
        ),
        Family("adagrad", optimizers.adagrad),
        Family("adadelta", optimizers.adadelta),
        Family("sign_sgd", optimizers.sign_sgd),
        Family("normalized_sgd", optimizers.normalized_sgd),
    )
}


def with_momentum() -> list[str]:
    """The families that take ``--momenta``."""
    return [name for name, f in FAMILIES.items() if f.momentum_key is not None]
