"""Problems to compare optimizers on: a loss, a starting point, data, a target.

A :class:`Problem` holds what ``jol.sweep``, ``jol.tune`` and ``jol.compare`` take (the
loss, ``init_fn``, training and validation data) with the defaults a comparison needs
(``steps``, ``batch_size``, a validation-loss ``target``). The suite runs on a laptop CPU:

- :func:`quadratic_noisy`: lecture 001's ill-conditioned quadratic with gradient noise;
- :func:`logistic`: logistic regression on the bundled digits;
- :func:`digits_mlp`: a tanh MLP (Flax NNX) on the digits;
- :func:`cnn`: an NNX CNN with BatchNorm and Dropout on the digits.

Add your own the same way: ``jol.problems.Problem(loss_fn=..., init_fn=..., data=...,
eval_data=..., target=..., steps=..., batch_size=...)``.
"""

from jaxopt_lab.problems._problem import FIELDS as FIELDS
from jaxopt_lab.problems._problem import Problem as Problem
from jaxopt_lab.problems._problem import ProblemError as ProblemError
from jaxopt_lab.problems._suite import CNN as CNN
from jaxopt_lab.problems._suite import MLP as MLP
from jaxopt_lab.problems._suite import SUITE as SUITE
from jaxopt_lab.problems._suite import cnn as cnn
from jaxopt_lab.problems._suite import digits_mlp as digits_mlp
from jaxopt_lab.problems._suite import get as get
from jaxopt_lab.problems._suite import logistic as logistic
from jaxopt_lab.problems._suite import quadratic_noisy as quadratic_noisy

__all__ = [
    "CNN",
    "FIELDS",
    "MLP",
    "SUITE",
    "Problem",
    "ProblemError",
    "cnn",
    "digits_mlp",
    "get",
    "logistic",
    "quadratic_noisy",
]
