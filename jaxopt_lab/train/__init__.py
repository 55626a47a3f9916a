"""Training loop: a compiled ``lax.scan`` with minibatching, history and callbacks."""

from jaxopt_lab._loop import Callback as Callback
from jaxopt_lab._loop import minibatch_indices as minibatch_indices
from jaxopt_lab.train._train import TrainResult as TrainResult
from jaxopt_lab.train._train import train as train

__all__ = [
    "Callback",
    "TrainResult",
    "minibatch_indices",
    "train",
]
