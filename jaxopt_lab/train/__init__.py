"""Training loop: a compiled ``lax.scan`` with minibatching, history and callbacks."""

from jaxopt_lab._loop import Callback as Callback
from jaxopt_lab._loop import EarlyStopping as EarlyStopping
from jaxopt_lab._loop import minibatch_indices as minibatch_indices
from jaxopt_lab.train._train import TrainResult as TrainResult
from jaxopt_lab.train._train import train as train

# ``jol.train`` is the function: ``jol.train.EarlyStopping(...)`` reads as documented.
train.EarlyStopping = EarlyStopping

__all__ = [
    "Callback",
    "EarlyStopping",
    "TrainResult",
    "minibatch_indices",
    "train",
]
