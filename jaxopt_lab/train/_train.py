"""``train``: one run, compiled once as a chunked ``lax.scan``."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm.auto

from jaxopt_lab import _loop
from jaxopt_lab._loop import checkpoint as ckpt
from jaxopt_lab._loop import checks
from jaxopt_lab._types import OptState, Params


class TrainResult(NamedTuple):
    """What :func:`train` returns."""

    params: Params  # final trained parameters (the last finite ones if the run was frozen)
    opt_state: OptState  # final optimizer state
    history: dict[str, np.ndarray]  # metric name -> (num_rows,) array; see `train`
    state: Any = None  # final model state: `state=` of a functional model, or the
    #                    non-trained variables of an NNX module (BatchNorm statistics, RNGs)
    model: Any = None  # NNX: the trained module, in evaluation mode; None otherwise
    best_params: Params = None  # with early stopping: the parameters of the best row
    best_step: int | None = None  # with early stopping: the step of that row
    best_state: Any = None  # with early stopping: the model state of the best row

    @property
    def diverged(self) -> bool:
        """Whether the run was frozen (a non-finite value, or above the divergence bound)."""
        return bool(self.history["diverged"][-1])

    @property
    def stopped(self) -> bool:
        """Whether early stopping stopped the run (``False`` without early stopping)."""
        return bool(self.history["stopped"][-1]) if "stopped" in self.history else False


def train(
    loss_fn: Callable[..., jax.Array],
    params: Params,
    optimizer: optax.GradientTransformation,
    data: Any,
    *,
    steps: int,
    batch_size: int | None = None,
    key: jax.Array | None,
    eval_data: Any = None,
    state: Any = None,
    wrt: Any = None,
    log_every: int = 1,
    callbacks: Sequence[_loop.Callback] = (),
    schedule: Callable[[jax.Array], jax.Array] | None = None,
    monitor_size: int = 1024,
    divergence_factor: float | None = None,
    chunk_size: int | None = None,
    progress: bool = True,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    early_stopping: _loop.EarlyStopping | None = None,
    throw: bool = False,
) -> TrainResult:
    r"""Trains ``params`` with ``optimizer`` for ``steps`` updates, in one compiled loop.

    The loop is a ``lax.scan`` compiled once and called in chunks of ``chunk_size``
    steps (a progress bar advances per chunk); the parameters and optimizer state are
    donated to it. A second call that computes the same program (the same loss, an
    optimizer with the same rule and settings, even as a new object) reuses it.

    Three kinds of model train here:

    - a pytree of arrays, ``loss_fn(params, batch) -> scalar``: every leaf is trained;
    - a Flax NNX module, ``loss_fn(model, batch) -> scalar``: the optimizer acts on its
      ``nnx.Param`` variables (or those ``wrt`` selects, as for ``nnx.Optimizer``); every
      other variable is carried through the loop, so BatchNorm statistics are updated by
      the training steps and ``nnx.Rngs`` streams advance (Dropout draws a new mask every
      step). Training steps see the module in training mode; ``train_loss`` and
      ``val_loss`` see it in evaluation mode (running averages, no dropout).
      ``TrainResult.model`` is the trained module;
    - a functional model with state (Linen ``batch_stats``), ``state=initial_state`` and
      ``loss_fn(params, state, batch, key) -> (loss, new_state)``: ``key`` is
      ``jax.random.fold_in(key, t)`` at training step ``t`` (from ``key``, or
      ``jax.random.key(0)`` when ``key`` is None); the monitoring and validation losses
      call it with ``key=None``: treat that as evaluation mode, the state it returns there
      is discarded. ``TrainResult.state`` is the final state.

    Step ``t`` counts updates: history row ``t`` describes :math:`\theta_t`, the
    parameters after ``t`` updates, and the update that leaves it. Rows are kept for
    ``t = 0, log_every, 2 log_every, ..., steps``; ``history`` maps names to arrays:

    - ``step``: ``t``;
    - ``train_loss``: ``loss_fn`` at :math:`\theta_t` on a fixed monitoring subset of
      ``data`` (``monitor_size`` examples, the same at every step, drawn once with NumPy
      seed 0; all of ``data`` when it is smaller), not the noisy current minibatch;
    - ``val_loss``: ``loss_fn`` at :math:`\theta_t` on all of ``eval_data`` (if given);
    - ``batch_loss``, ``grad_norm``: loss and gradient norm on minibatch ``t``, used by
      update ``t`` (NaN in the last row, where no update follows);
    - ``learning_rate``: ``schedule(t)`` when ``schedule`` is given, else the
      ``learning_rate`` of an ``optax.inject_hyperparams`` state when there is exactly
      one (absent otherwise);
    - ``nonfinite``, ``diverged``: whether the run is frozen by step ``t`` because of a
      non-finite value (``nonfinite``), or for any reason (``diverged``);
    - one entry per callback metric (NaN where the callback was not evaluated).

    The optimizer's ``update`` receives ``value`` (the minibatch loss), ``grad`` and
    ``value_fn`` (the minibatch loss as a function of the parameters) as extra arguments,
    so ``jol.newton``, ``optax.lbfgs()`` with its line search and
    ``optax.contrib.reduce_on_plateau`` train unchanged.

    A run that produces inf or NaN (loss, gradient, parameters, optimizer or model
    state), or whose ``train_loss`` exceeds ``divergence_factor`` times the magnitude of
    its initial value, stops changing and is flagged (``TrainResult.diverged``). Its
    state stays at finite values: the updates between two logged steps are checked once,
    after the last of them, and a run that went non-finite among them is put back to its
    state at the first (with ``log_every=1``, the last finite values).
    Nothing is raised inside compiled code; with ``throw=True`` a
    :class:`jaxopt_lab.DivergedError` is raised after the loop.

    Minibatches (``batch_size`` given) are drawn without replacement, reshuffled every
    epoch from ``key`` (see :func:`jaxopt_lab.train.minibatch_indices`); the same key
    gives the same run. ``batch_size=None`` trains on all of ``data`` at every step.

    Args:
      loss_fn: the loss, as above for the kind of model.
      params: the initial parameters (any pytree of float arrays) or an ``nnx.Module``;
        not modified.
      optimizer: an ``optax.GradientTransformation``, e.g. ``jol.momentum(0.1, 0.9)``.
      data: a pytree of arrays sharing a leading (example) axis.
      steps: the number of updates, ``>= 1``.
      batch_size: examples per update, or ``None`` for full batch.
      key: a PRNG key for minibatch order (and a stateful model's per-step keys); may
        be ``None`` for full batch.
      eval_data: optional validation data, structured like ``data``.
      state: the initial state of a functional model (see above); None otherwise.
      wrt: NNX only: the filter of the trained variables (default ``nnx.Param``).
      log_every: one history row every ``log_every`` steps; must divide ``steps``.
      callbacks: :class:`Callback` s evaluated every ``callback.every`` steps.
      schedule: the learning-rate schedule inside ``optimizer``, to log it.
      monitor_size: examples in the monitoring subset for ``train_loss``.
      divergence_factor: freeze the run when ``train_loss`` exceeds this many times the
        magnitude of its initial value (``None``: only non-finite values freeze it).
      chunk_size: steps per compiled call, rounded up to a multiple of ``log_every``
        (default: about ``steps / 20``).
      progress: show a tqdm progress bar.
      checkpoint_dir: if given, the state and history are saved there with
        orbax-checkpoint every ``checkpoint_every`` steps, and a call with the same
        arguments resumes from them. The directory records what the run computes (the
        lowered training program's text: loss body, optimizer, fixed hyperparameters,
        schedules; data and starting state by content) and refuses a call that computes
        something else (``ValueError``); a damaged save is named in a warning and the
        run starts over. One process writes it at a time (an OS file lock).
      checkpoint_every: steps between checkpoints, rounded up to whole chunks
        (default: every chunk).
      early_stopping: ``jol.train.EarlyStopping(metric="val_loss", patience=10,
        min_delta=0.0)``: after ``patience`` logged rows without the metric improving on
        its best, the run stops (its updates are discarded, like a diverged run's, but it
        is flagged ``stopped`` in the history and ``TrainResult.stopped``);
        ``TrainResult.best_params`` (and ``best_state``, ``best_step``) are those of the
        best row. The history gains ``stopped`` and ``best_step``.
      throw: raise :class:`jaxopt_lab.DivergedError` if the run diverged.

    Returns:
      A :class:`TrainResult` ``(params, opt_state, history, state, model)``; with early
      stopping also ``best_params``, ``best_step``, ``best_state``.

    Raises:
      TypeError: for an argument of the wrong type (e.g. ``steps=4.0`` or a
        ``loss_fn`` that does not return a real scalar), naming the argument.
      ValueError: for an argument out of range (e.g. ``steps=0``, ``batch_size``
        larger than the data), naming the argument.
      DivergedError: with ``throw=True``, when the run diverged.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> import jaxopt_lab as jol
      >>> ds = jol.datasets.digits()
      >>> def loss_fn(params, batch):
      ...     logits = batch.x @ params["w"] + params["b"]
      ...     return optax.softmax_cross_entropy_with_integer_labels(logits, batch.y).mean()
      >>> params = {"w": jnp.zeros((64, 10)), "b": jnp.zeros(10)}
      >>> result = jol.train(loss_fn, params, optax.sgd(0.5), ds.train, steps=100,
      ...                    batch_size=32, key=jax.random.key(0), log_every=10,
      ...                    eval_data=ds.validation, progress=False)
      >>> bool(result.history["train_loss"][-1] < result.history["train_loss"][0])
      True

      A Flax NNX model trains as it is::

        from flax import nnx

        model = nnx.Linear(64, 10, rngs=nnx.Rngs(0))

        def nnx_loss(model, batch):
            logits = model(batch.x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, batch.y).mean()

        result = jol.train(nnx_loss, model, optax.sgd(0.5), ds.train, steps=100, key=None)
        trained = result.model
    """
    n = checks.leading_axis("data", data)
    spec = checks.build_spec(
        steps=steps,
        num_examples=n,
        batch_size=batch_size,
        log_every=log_every,
        chunk_size=chunk_size,
        divergence_factor=divergence_factor,
        callbacks=callbacks,
        schedule=schedule,
        early_stopping=early_stopping,
        has_eval_data=eval_data is not None,
    )
    if eval_data is not None:
        checks.leading_axis("eval_data", eval_data)
        checks.check_like("eval_data", eval_data, data, "data")
    checks.check_key(key)
    monitor_size = checks.check_monitor_size(monitor_size)
    if checkpoint_every is not None:
        checkpoint_every = checks.check_count(
            checkpoint_every, "checkpoint_every", fix="E.g. checkpoint_every=1000."
        )
    directory = None if checkpoint_dir is None else ckpt.check_directory(checkpoint_dir)
    if spec.batch_size is not None and key is None:
        raise ValueError("`key` is needed to draw minibatches; pass e.g. jax.random.key(0).")
    optimizer = _loop.with_extra_args(checks.check_optimizer("optimizer", optimizer))
    model, params, model_state = _loop.model_from_params(loss_fn, params, state, wrt)
    checks.check_loss(model, params, model_state, data, spec.batch_size or n)
    # A new optimizer object with the same rule and settings finds the compiled program.
    optimizer = _loop.canonical(optimizer, _loop.probe_optimizer, jax.eval_shape(lambda: params))
    monitor = _loop.to_device(_loop.monitoring_subset(data, n, monitor_size))
    data = _loop.to_device(data)
    eval_data = None if eval_data is None else _loop.to_device(eval_data)
    # Eager: a compiled init would be compiled anew for every optimizer.
    run = _loop.init_run(model, optimizer, spec, params, model_state, _loop.typed_key(key), monitor)
    static = _loop.Static(model=model, optimizer=optimizer, spec=spec)

    saver = None
    if directory is not None:
        every = checkpoint_every or spec.chunk_size
        idx = _loop.chunk_indices(spec, None if key is None else [_loop.key_words(key)], None, 0)
        chunk_args = (run, jnp.int32(0), idx, data, monitor, eval_data)
        meta = ckpt.fingerprint(
            "train",
            programs={"train_run": _loop.programs.train_run.text_hash(static, *chunk_args)},
            model_kind=model.kind,
            spec=spec,
            monitor_size=monitor_size,
            data=data,
            eval_data=eval_data,
            start=run,  # parameters, model state, the optimizer's initial state, the key
        )
        saver = _Saver(ckpt.Directory.open(directory, meta), every, spec)
        run = saver.restore(run)
    try:
        return _train(static, run, spec, key, data, monitor, eval_data, saver, progress, throw)
    finally:
        if saver is not None:
            saver.directory.close()


def _train(static, run, spec, key, data, monitor, eval_data, saver, progress, throw):
    """The loop over chunks, from ``run`` (restored from ``saver`` when resuming)."""
    model = static.model
    words = None if key is None else [_loop.key_words(key)]
    bar = tqdm.auto.tqdm(total=spec.steps, disable=not progress, unit="step", desc="train")
    first = 0 if saver is None else saver.next_chunk
    bar.update(min(first * spec.chunk_size, spec.steps))
    run, rows = _loop.run_chunks(
        lambda run, start, idx: _loop.programs.train_run(
            static, run, start, idx, data, monitor, eval_data
        ),
        run,
        spec,
        indices=lambda start: _loop.chunk_indices(spec, words, None, start),
        first=first,
        progress=bar.update,
        after=None if saver is None else saver.save,
    )
    bar.close()
    history = _loop.assemble_history((saver.rows if saver else []) + rows, spec, axis=0)
    if throw:
        _loop.raise_if_diverged(
            history["diverged"][None], history["step"], labels=["the run"], what="train"
        )
    best = {}
    if run.best is not None:
        best = {
            "best_params": run.best.params,
            "best_step": int(run.best.step),
            "best_state": run.best.model_state,
        }
    return TrainResult(
        params=run.params,
        opt_state=run.opt_state,
        history=history,
        state=run.model_state,
        model=model.module(run.params, run.model_state),
        **best,
    )


class _Saver:
    """The checkpoint of one run: its state and history rows, every ``every`` steps.

    Each save is a new orbax item ``train_<chunks done>``; the previous one is removed
    once the metadata records the new one, so a kill at any moment leaves one to resume.
    """

    def __init__(self, directory: ckpt.Directory, every: int, spec: _loop.Spec):
        self.directory, self.every, self.spec = directory, every, spec
        self.next_chunk = 0
        self.rows: list[dict[str, np.ndarray]] = []  # rows of the chunks restored

    def restore(self, run: _loop.RunState) -> _loop.RunState:
        names = sorted(n for n in self.directory.items if n.startswith("train_"))
        for name in names[:-1]:  # a kill between saving the newest and removing these
            self.directory.discard(name)
        saved = self.directory.load(names[-1]) if names else None
        if saved is None:
            return run
        run = _loop.to_device(ckpt.tree_from_arrays("s", saved, run))
        self.next_chunk = int(saved["next_chunk"])
        if self.next_chunk:
            names = sorted(k[2:] for k in saved if k.startswith("h_"))
            self.rows = [{k: saved["h_" + k] for k in names}]
        return run

    def save(self, chunk: int, run: _loop.RunState, rows: list) -> None:
        end = (chunk + 1) * self.spec.chunk_size
        if end - self.next_chunk * self.spec.chunk_size < self.every and (
            chunk != self.spec.num_chunks - 1
        ):
            return
        done = self.rows + rows
        history = {k: np.concatenate([ch[k] for ch in done]) for k in done[0]}
        arrays = ckpt.tree_to_arrays("s", jax.device_get(run))
        arrays.update({"h_" + k: v for k, v in history.items()})
        previous = f"train_{self.next_chunk:05d}" if self.next_chunk else ""
        self.directory.save(
            f"train_{chunk + 1:05d}",
            {**arrays, "next_chunk": np.asarray(chunk + 1)},
            replaces=previous,
        )
        self.next_chunk = chunk + 1
        self.rows, rows[:] = [history], []
