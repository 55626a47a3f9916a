"""A problem of your own for ``jaxopt-lab sweep --problem`` and ``hessian --problem``.

Run from this folder::

    jaxopt-lab sweep --problem my_problem:make_problem --optimizer adam --lrs 0.01,0.003
    jaxopt-lab hessian --problem my_problem:make_problem --steps 200

or from anywhere with the file's path: ``--problem examples/my_problem.py:make_problem``.

The net is a Flax NNX module with BatchNorm and Dropout on the bundled digits: the
engine trains it in training mode (fresh dropout masks, batch statistics) and evaluates
and analyzes it in evaluation mode.
"""

import optax
from flax import nnx

from jaxopt_lab import datasets
from jaxopt_lab.cli import Problem


class Net(nnx.Module):
    def __init__(self, *, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(datasets.NUM_FEATURES, 64, rngs=rngs)
        self.norm = nnx.BatchNorm(64, rngs=rngs)
        self.drop = nnx.Dropout(0.1, rngs=rngs)
        self.out = nnx.Linear(64, datasets.NUM_CLASSES, rngs=rngs)

    def __call__(self, x):
        return self.out(self.drop(nnx.relu(self.norm(self.hidden(x)))))


def loss_fn(model, batch):
    logits = model(batch.x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch.y).mean()


def make_problem() -> Problem:
    ds = datasets.digits()
    return Problem(
        loss_fn=loss_fn,
        init_fn=lambda key: Net(rngs=nnx.Rngs(params=key, dropout=key)),
        data=ds.train,
        eval_data=ds.validation,
        name="digits BatchNorm net",
    )
