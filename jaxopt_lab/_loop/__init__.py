"""The one training engine under ``jol.train`` and ``jol.sweep`` (private).

Both entry points import these names and nothing else from the package:

- the model adapter (:mod:`._model`): plain parameters, functional models with state,
  Flax NNX modules, seen alike as ``(params, model_state)``;
- the step and its state (:mod:`._step`), the programs compiled from it for one run and
  for many (:mod:`._programs`), found again by what they compute (:mod:`._program`);
- minibatch order and the monitoring subset (:mod:`._data`), the host loop over chunks
  (:mod:`._chunks`), history and failure reports (:mod:`._history`);
- argument checks (:mod:`._checks`), callbacks (:mod:`._callbacks`) and checkpoints
  (:mod:`._checkpoint`).
"""

from jaxopt_lab._loop import _checkpoint as checkpoint
from jaxopt_lab._loop import _checks as checks
from jaxopt_lab._loop import _programs as programs
from jaxopt_lab._loop._callbacks import Callback as Callback
from jaxopt_lab._loop._chunks import chunk_indices as chunk_indices
from jaxopt_lab._loop._chunks import run_chunks as run_chunks
from jaxopt_lab._loop._data import concatenate as concatenate
from jaxopt_lab._loop._data import host_take as host_take
from jaxopt_lab._loop._data import is_key as is_key
from jaxopt_lab._loop._data import key_words as key_words
from jaxopt_lab._loop._data import minibatch_indices as minibatch_indices
from jaxopt_lab._loop._data import monitoring_subset as monitoring_subset
from jaxopt_lab._loop._data import stack_take as stack_take
from jaxopt_lab._loop._data import to_device as to_device
from jaxopt_lab._loop._data import typed_key as typed_key
from jaxopt_lab._loop._history import assemble_history as assemble_history
from jaxopt_lab._loop._history import describe_run as describe_run
from jaxopt_lab._loop._history import raise_if_diverged as raise_if_diverged
from jaxopt_lab._loop._model import from_init as model_from_init
from jaxopt_lab._loop._model import from_params as model_from_params
from jaxopt_lab._loop._program import Static as Static
from jaxopt_lab._loop._program import canonical as canonical
from jaxopt_lab._loop._program import padded_width as padded_width
from jaxopt_lab._loop._step import EarlyStopping as EarlyStopping
from jaxopt_lab._loop._step import RunState as RunState
from jaxopt_lab._loop._step import Spec as Spec
from jaxopt_lab._loop._step import init_run as init_run
from jaxopt_lab._loop._step import probe_optimizer as probe_optimizer
from jaxopt_lab._loop._step import probe_optimizer_factory as probe_optimizer_factory
from jaxopt_lab._loop._step import with_extra_args as with_extra_args

__all__ = [
    "Callback",
    "EarlyStopping",
    "RunState",
    "Spec",
    "Static",
    "assemble_history",
    "canonical",
    "checkpoint",
    "checks",
    "chunk_indices",
    "concatenate",
    "describe_run",
    "host_take",
    "init_run",
    "is_key",
    "key_words",
    "minibatch_indices",
    "model_from_init",
    "model_from_params",
    "monitoring_subset",
    "padded_width",
    "probe_optimizer",
    "probe_optimizer_factory",
    "programs",
    "raise_if_diverged",
    "run_chunks",
    "stack_take",
    "to_device",
    "typed_key",
    "with_extra_args",
]
