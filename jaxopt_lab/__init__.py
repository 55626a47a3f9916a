"""jaxopt_lab: a JAX optimization laboratory.

Textbook update rules as optax gradient transformations, vmapped hyperparameter
sweeps, and Hessian eigen-analysis.
"""

from jaxopt_lab import _xla_workaround  # noqa: F401 (first: before JAX starts its CPU backend)
from jaxopt_lab import curvature as curvature
from jaxopt_lab import datasets as datasets
from jaxopt_lab import distributed as distributed
from jaxopt_lab import init as init
from jaxopt_lab import landscapes as landscapes
from jaxopt_lab import normalization as normalization
from jaxopt_lab import problems as problems
from jaxopt_lab import schedules as schedules
from jaxopt_lab import search as search
from jaxopt_lab import tuning as tuning
from jaxopt_lab._errors import DivergedError as DivergedError
from jaxopt_lab._loop import Callback as Callback
from jaxopt_lab.optimizers import adadelta as adadelta
from jaxopt_lab.optimizers import adagrad as adagrad
from jaxopt_lab.optimizers import adam as adam
from jaxopt_lab.optimizers import delta_bar_delta as delta_bar_delta
from jaxopt_lab.optimizers import momentum as momentum
from jaxopt_lab.optimizers import nesterov as nesterov
from jaxopt_lab.optimizers import newton as newton
from jaxopt_lab.optimizers import nonlinear_cg as nonlinear_cg
from jaxopt_lab.optimizers import normalized_sgd as normalized_sgd
from jaxopt_lab.optimizers import rmsprop as rmsprop
from jaxopt_lab.optimizers import sgd as sgd
from jaxopt_lab.optimizers import sign_sgd as sign_sgd
from jaxopt_lab.sweep import SweepResult as SweepResult
from jaxopt_lab.sweep import seed_keys as seed_keys
from jaxopt_lab.sweep import sweep as sweep
from jaxopt_lab.train import TrainResult as TrainResult
from jaxopt_lab.train import train as train
from jaxopt_lab.transforms._common import scale_by_learning_rate as scale_by_learning_rate
from jaxopt_lab.transforms.adaptive import scale_by_adadelta as scale_by_adadelta
from jaxopt_lab.transforms.adaptive import scale_by_adagrad as scale_by_adagrad
from jaxopt_lab.transforms.adaptive import scale_by_adam as scale_by_adam
from jaxopt_lab.transforms.adaptive import scale_by_rms as scale_by_rms
from jaxopt_lab.transforms.averaging import averaged_params as averaged_params
from jaxopt_lab.transforms.averaging import polyak_averaging as polyak_averaging
from jaxopt_lab.transforms.delta_bar_delta import (
    scale_by_delta_bar_delta as scale_by_delta_bar_delta,
)
from jaxopt_lab.transforms.momentum import scale_by_ema as scale_by_ema
from jaxopt_lab.transforms.momentum import scale_by_trace as scale_by_trace
from jaxopt_lab.transforms.newton import scale_by_newton as scale_by_newton
from jaxopt_lab.transforms.normalized import scale_by_global_norm as scale_by_global_norm
from jaxopt_lab.transforms.normalized import scale_by_sign as scale_by_sign
from jaxopt_lab.tuning import Comparison as Comparison
from jaxopt_lab.tuning import TuneResult as TuneResult
from jaxopt_lab.tuning import compare as compare
from jaxopt_lab.tuning import tune as tune

__version__ = "0.1.0"

# --- subpackages (each line added by the issue that built it) ---
from jaxopt_lab import diagnostics as diagnostics  # issue 5
from jaxopt_lab import plot as plot  # issue 5

__all__ = [
    "Callback",
    "Comparison",
    "DivergedError",
    "SweepResult",
    "TrainResult",
    "TuneResult",
    "adadelta",
    "adagrad",
    "adam",
    "averaged_params",
    "compare",
    "curvature",
    "datasets",
    "delta_bar_delta",
    "diagnostics",
    "distributed",
    "init",
    "landscapes",
    "momentum",
    "nesterov",
    "newton",
    "nonlinear_cg",
    "normalization",
    "normalized_sgd",
    "plot",
    "polyak_averaging",
    "problems",
    "rmsprop",
    "scale_by_adadelta",
    "scale_by_adagrad",
    "scale_by_adam",
    "scale_by_delta_bar_delta",
    "scale_by_ema",
    "scale_by_global_norm",
    "scale_by_learning_rate",
    "scale_by_newton",
    "scale_by_rms",
    "scale_by_sign",
    "scale_by_trace",
    "schedules",
    "search",
    "seed_keys",
    "sgd",
    "sign_sgd",
    "sweep",
    "train",
    "tune",
    "tuning",
]
