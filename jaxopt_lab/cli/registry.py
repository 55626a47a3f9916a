"""The one table of optimizers the command line knows: every subcommand, the demo, its
report and the tests read it.

Each :class:`Entry` says how to build the rule from a learning rate (and its
momentum-like coefficient, when it has one), which grid key that coefficient is swept
under, the rule's stability threshold on the sharpness, its display name, and how it
runs in the race on the lectures' landscapes. One spelling per optimizer: ``sign_sgd``,
with ``sign-sgd`` accepted alike everywhere (:func:`get`).

The full-batch methods (Newton's method, L-BFGS, nonlinear conjugate gradients: LeCun &
Defazio, "Optimization for Deep Learning", lecture 001: "If you must use a full-batch
method ... LBFGS & Conjugate-Gradients are far better than vanilla gradient descent")
need the loss itself (``value_fn``) at every update; they run in the race only
(:data:`RACERS`), not in the minibatch sweeps (:data:`NAMES`).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Mapping

import jax
import optax

from jaxopt_lab import curvature, optimizers, schedules


@dataclasses.dataclass(frozen=True)
class Race:
    """How an optimizer runs in the race (``jaxopt-lab landscape`` and the demo).

    ``learning_rates`` are tuned by hand per landscape; elsewhere ``rule`` gives the rate
    (see :func:`jaxopt_lab.cli.race.learning_rate`): ``("curvature", c)`` is ``c / L``
    with ``L`` the largest |eigenvalue| of the Hessian at the start and at the first
    minimum; ``("distance", c)`` is ``c`` times the box's longest side; ``("fixed", v)``.
    ``decay``: the rate decays as ``lr / (1 + t / decay)`` (fixed-length steps need it
    to settle, Robbins-Monro, lecture 004).
    """

    learning_rates: Mapping[str, float]
    rule: tuple[str, float] = ("curvature", 1.0)
    decay: float | None = None


@dataclasses.dataclass(frozen=True)
class Entry:
    """One optimizer of the command line."""

    name: str  # the one spelling: sweep_<name>.csv, --optimizer NAME, the JSON reports
    display: str  # in tables, legends and the report
    build: Callable[..., optax.GradientTransformation]  # build(lr) or build(lr, coefficient)
    momentum_key: str | None = None  # grid key of the coefficient; None: it has none
    default_coefficient: float | None = None  # build's default for the coefficient
    default_momenta: tuple[float, ...] = ()  # swept by `jaxopt-lab sweep` by default
    about: str = ""  # what the coefficient is, for --help
    stability_formula: str = ""  # the threshold c / lr as text (jol.curvature computes it)
    heavy_ball: bool = False  # p <- beta p - lr g: coefficient 0 is plain gradient descent
    adaptive: bool = False  # divides each coordinate by its RMS gradient
    race: Race | None = None
    family: str = ""  # the race's small multiples: one panel per family (default: name)
    full_batch: bool = False  # its update needs the loss (value_fn): raced, never swept

    @property
    def panel(self) -> str:
        return self.family or self.display

    def coefficient(self, setting: Mapping[str, object]) -> float | None:
        """The coefficient of ``setting`` (a sweep row or grid point), or the default."""
        if self.momentum_key is not None and setting.get(self.momentum_key) is not None:
            return float(setting[self.momentum_key])  # type: ignore[arg-type]
        return self.default_coefficient

    def make(self, learning_rate, coefficient: float | None = None):
        """The transformation at ``learning_rate`` (a number or a schedule)."""
        if self.momentum_key is None or coefficient is None:
            return self.build(learning_rate)
        return self.build(learning_rate, coefficient)

    def threshold(self, learning_rate: float, coefficient: float | None = None) -> float | None:
        """The largest stable sharpness at ``learning_rate`` (None: no such bound), as
        ``jol.curvature.stability_threshold`` gives it for the rule this entry builds."""
        c = self.default_coefficient if coefficient is None else coefficient
        found = curvature.stability_threshold(self.make(learning_rate, c))
        return None if found is None else float(found[0])

    @property
    def preconditioned(self) -> bool:
        """The threshold bounds the preconditioned sharpness lambda_max(P^-1 H)."""
        found = curvature.stability_threshold(self.make(1.0, self.default_coefficient))
        return found is not None and found[1]

    def factor(self, coefficient: float | None = None) -> float | None:
        """``c`` of the threshold ``c / lr`` (None: no such bound)."""
        return self.threshold(1.0, coefficient)

    def label(self, setting: Mapping[str, object]) -> str:
        """``"SGD + momentum 0.9"``; plain ``"SGD"`` for heavy-ball momentum 0."""
        c = self.coefficient(setting) if self.momentum_key in setting else None
        if self.heavy_ball and self.momentum_key is not None and c == 0:
            return "SGD"
        return self.display if c is None else f"{self.display} {c:g}"

    def grid(
        self, learning_rates: list[float], momenta: list[float] | None
    ) -> dict[str, list[float]]:
        """The sweep grid: learning rates, and momenta when the rule takes them."""
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

        def make_optimizer(hparams: Mapping[str, jax.Array]) -> optax.GradientTransformation:
            if key is None:
                return self.build(hparams["learning_rate"])
            return self.build(hparams["learning_rate"], hparams[key])

        return make_optimizer

    def race_optimizer(self, learning_rate: float) -> optax.GradientTransformation:
        """The transformation the race runs: the decaying rate where the race has one."""
        decay = self.race.decay if self.race is not None else None
        lr = learning_rate if decay is None else schedules.inverse_time(learning_rate, decay)
        return self.make(lr, self.default_coefficient)


ENTRIES: tuple[Entry, ...] = (
    Entry(
        "sgd",
        "SGD",
        optimizers.sgd,
        stability_formula="2 / lr",
        race=Race({"lecture_quadratic": 0.45, "rosenbrock": 1.5e-3}),
        family="SGD and momentum",
        heavy_ball=True,
    ),
    Entry(
        "momentum",
        "SGD + momentum",
        lambda lr, beta=0.9: optimizers.momentum(lr, beta),
        "momentum",
        0.9,
        (0.9,),
        "beta of heavy-ball momentum",
        "(2 + 2 beta) / lr",
        race=Race({"lecture_quadratic": 0.1, "rosenbrock": 1e-3}, ("curvature", 0.1)),
        family="SGD and momentum",
        heavy_ball=True,
    ),
    Entry(
        "momentum_ema",
        "momentum (EMA form)",
        lambda lr, beta=0.9: optimizers.momentum(lr, beta, form="ema"),
        "momentum",
        0.9,
        (0.9,),
        "beta of the EMA form of momentum",
        "(2 + 2 beta) / ((1 - beta) lr)",
        race=Race({"lecture_quadratic": 1.0, "rosenbrock": 1e-2}),
        family="SGD and momentum",
    ),
    Entry(
        "nesterov",
        "Nesterov",
        lambda lr, beta=0.9: optimizers.nesterov(lr, beta),
        "momentum",
        0.9,
        (0.9,),
        "beta of Nesterov momentum",
        "(2 + 2 beta) / ((1 + 2 beta) lr)",
        race=Race({"lecture_quadratic": 0.1, "rosenbrock": 1e-3}, ("curvature", 0.1)),
        family="SGD and momentum",
    ),
    Entry(
        "adagrad",
        "AdaGrad",
        optimizers.adagrad,
        stability_formula="2 / lr on P^-1 H",
        race=Race({"lecture_quadratic": 1.0, "rosenbrock": 1.5}, ("distance", 0.25)),
        family="AdaGrad and AdaDelta",
        adaptive=True,
    ),
    Entry(
        "rmsprop",
        "RMSProp",
        lambda lr, m=None: optimizers.rmsprop(lr, momentum=m),
        "momentum",
        None,
        (),
        "RMSProp's velocity coefficient",
        "(2 + 2 momentum) / lr on P^-1 H",
        race=Race({"lecture_quadratic": 0.01, "rosenbrock": 1e-3}, ("distance", 1e-3)),
        family="RMSProp and Adam",
        adaptive=True,
    ),
    Entry(
        "adam",
        "Adam",
        lambda lr, b1=0.9: optimizers.adam(lr, b1),
        "b1",
        0.9,
        (),
        "Adam's b1",
        "(2 + 2 b1) / ((1 - b1) lr)",
        race=Race({"lecture_quadratic": 0.1, "rosenbrock": 0.02}, ("distance", 0.01)),
        family="RMSProp and Adam",
        adaptive=True,
    ),
    Entry(
        "adam_nobc",
        "Adam (no bias correction)",
        lambda lr, b1=0.9: optimizers.adam(lr, b1, bias_correction=False),
        "b1",
        0.9,
        (),
        "Adam's b1",
        "(2 + 2 b1) / ((1 - b1) lr)",
        race=Race({"lecture_quadratic": 0.1, "rosenbrock": 0.02}, ("distance", 0.01)),
        family="RMSProp and Adam",
        adaptive=True,
    ),
    Entry(
        "adadelta",
        "AdaDelta",
        optimizers.adadelta,
        race=Race({"lecture_quadratic": 1.0, "rosenbrock": 1.0}, ("fixed", 1.0)),
        family="AdaGrad and AdaDelta",
        adaptive=True,
    ),
    Entry(
        "delta_bar_delta",
        "delta-bar-delta",
        lambda lr: optimizers.delta_bar_delta(lr, kappa=0.05 * lr, phi=0.3, gamma=0.7),
        race=Race({"lecture_quadratic": 0.3, "rosenbrock": 1e-3}, ("curvature", 0.5)),
        family="delta-bar-delta",
    ),
    Entry(
        "sign_sgd",
        "sign SGD",
        optimizers.sign_sgd,
        race=Race({"lecture_quadratic": 0.05, "rosenbrock": 0.01}, ("distance", 0.005), 100.0),
        family="sign and normalized SGD",
    ),
    Entry(
        "normalized_sgd",
        "normalized SGD",
        optimizers.normalized_sgd,
        race=Race({"lecture_quadratic": 0.1, "rosenbrock": 0.1}, ("distance", 0.02), 100.0),
        family="sign and normalized SGD",
    ),
    # full batch: the loss (value_fn) at every update; the step is 1 (Newton) or a line
    # search's (L-BFGS, CG), so the rate is fixed at 1 on every landscape
    Entry(
        "newton",
        "Newton",
        optimizers.newton,
        race=Race({}, ("fixed", 1.0)),
        family="Newton, L-BFGS and CG",
        full_batch=True,
    ),
    Entry(
        "lbfgs",
        "L-BFGS",
        optax.lbfgs,
        race=Race({}, ("fixed", 1.0)),
        family="Newton, L-BFGS and CG",
        full_batch=True,
    ),
    Entry(
        "nonlinear_cg",
        "nonlinear CG (PR+)",
        optimizers.nonlinear_cg,
        race=Race({}, ("fixed", 1.0)),
        family="Newton, L-BFGS and CG",
        full_batch=True,
    ),
)

REGISTRY: dict[str, Entry] = {e.name: e for e in ENTRIES}
ALL: tuple[str, ...] = tuple(REGISTRY)
"""Every optimizer of the table."""
NAMES: tuple[str, ...] = tuple(e.name for e in ENTRIES if not e.full_batch)
"""The optimizers the sweeps train on minibatches (the update needs only the gradient)."""
RACERS: tuple[str, ...] = tuple(e.name for e in ENTRIES if e.race is not None)
"""The optimizers of the race on the landscapes (the full-batch methods among them)."""


def canonical(name: str) -> str:
    """``"Sign-SGD"`` -> ``"sign_sgd"``: ``-`` and ``_`` alike, case ignored."""
    return str(name).strip().lower().replace("-", "_")


def get(name: str, choices: tuple[str, ...] = ALL) -> Entry:
    """The entry called ``name`` (``-`` and ``_`` alike); ValueError with the choices."""
    wanted = canonical(name)
    if wanted in choices:
        return REGISTRY[wanted]
    close = difflib.get_close_matches(wanted, choices, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"unknown optimizer {name!r}{hint}; choose from {', '.join(choices)}")


def with_momentum() -> list[str]:
    """The optimizers that take ``--momenta``."""
    return [e.name for e in ENTRIES if e.momentum_key is not None]
