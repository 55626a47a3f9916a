"""The host loop over chunks, the same for one run and for many."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab._loop._data import minibatch_indices
from jaxopt_lab._loop._step import Spec
from jaxopt_lab.distributed._collectives import fetch as fetch_rows


def chunk_indices(
    spec: Spec, words: Sequence[tuple[int, ...]] | None, which: np.ndarray | None, start: int
) -> np.ndarray | None:
    """Minibatch indices of the chunk starting at ``start``.

    ``None`` for full batch; ``(chunk_size, batch_size)`` for one run (``which`` None,
    ``words`` holding one key's words); ``(runs, chunk_size, batch_size)`` for many, run
    ``r`` drawing with ``words[which[r]]``.
    """
    if spec.batch_size is None:
        return None
    per_key = [
        minibatch_indices(w, start, spec.chunk_size, spec.num_examples, spec.batch_size)
        for w in words
    ]
    return per_key[0] if which is None else np.stack(per_key)[which]


def run_chunks(
    step: Callable[[Any, jax.Array, Any], tuple[Any, dict]],
    state: Any,
    spec: Spec,
    *,
    indices: Callable[[int], Any],
    first: int = 0,
    last: int | None = None,
    progress: Callable[[int], None] = lambda steps: None,
    after: Callable[[int, Any, list], None] | None = None,
    gather_at_end: bool = False,
) -> tuple[Any, list[dict[str, np.ndarray]]]:
    """Runs chunks ``first, ..., last - 1``: ``state, rows = step(state, start, idx)``.

    Chunk ``c + 1`` is dispatched before the rows of chunk ``c`` are fetched, so the host
    prepares the next minibatch indices while the device trains (JAX dispatches
    asynchronously); with ``after`` (checkpoints) each chunk is waited for.

    Args:
      last: one past the last chunk run here (default ``spec.num_chunks``: to the end).
      indices: ``start -> idx`` (already placed where the program wants it).
      progress: called with the number of real steps each chunk advanced.
      after: ``after(chunk, state, rows_so_far)`` once a chunk is done (checkpoints).
      gather_at_end: rows that span processes stay on the devices until the last chunk
        and are then gathered in one collective (progress waits only for this
        process's shards): one synchronisation of the processes instead of one per
        chunk. Not with ``after``.

    Returns:
      The final state and the rows of every chunk run here, on the host.
    """
    rows: list[dict[str, np.ndarray]] = []
    waiting: list[tuple[int, Any]] = []  # (steps advanced, rows on the device)

    kept: list[Any] = []  # with gather_at_end: the rows of every chunk, on the devices

    def fetch():
        done, chunk_rows = waiting.pop()
        if gather_at_end:
            for leaf in jax.tree.leaves(chunk_rows):  # this process's part only
                for shard in leaf.addressable_shards:
                    shard.data.block_until_ready()
            kept.append(chunk_rows)
        else:
            rows.append(fetch_rows(chunk_rows))  # every process gets every run's rows
        progress(done)

    for c in range(first, spec.num_chunks if last is None else last):
        start = c * spec.chunk_size
        state, chunk_rows = step(state, jnp.asarray(start, jnp.int32), indices(start))
        if waiting:
            fetch()
        waiting.append(
            (min(start + spec.chunk_size, spec.steps) - min(start, spec.steps), chunk_rows)
        )
        if after is not None:
            fetch()
            after(c, state, rows)
    if waiting:
        fetch()
    if kept:
        rows.extend(fetch_rows(kept))  # one gather for every chunk
    return state, rows
