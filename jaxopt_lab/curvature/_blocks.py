r"""Per-block curvature: the spectra of the diagonal blocks of a Hessian (or GGN, Fisher).

For a partition of the parameters into blocks (by default one per layer), the diagonal
block :math:`H_{bb} = \partial^2 L / \partial\theta_b^2` says how curved the loss is along
that layer's parameters alone: its top eigenvalues and trace, computed matrix-free as
:math:`H_{bb} v_b = [H (v_b, 0)]_b` (one Hessian-vector product with the other blocks'
entries zero). Layers whose curvature differs by orders of magnitude are what layer-wise
learning rates and preconditioners (Adam, K-FAC, LARS) address.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab._validation import (
    check_bool,
    check_choice,
    check_count,
    check_key,
    check_tolerance,
)
from jaxopt_lab.curvature._eigen import eigenvalues
from jaxopt_lab.curvature._ggn import fisher_operator, ggn_operator
from jaxopt_lab.curvature._operator import HessianOperator, as_operator
from jaxopt_lab.curvature._stochastic import trace

CURVATURES = ("hessian", "ggn", "fisher")


def leaf_name(path: tuple) -> str:
    """``"conv1/kernel"`` for the key path of a leaf (dict keys, attributes, indices; the
    ``.value`` of a Flax NNX variable is not part of the name)."""
    parts = []
    if path and type(path[-1]).__name__ == "GetAttrKey" and path[-1].name == "value":
        path = path[:-1]
    for key in path:
        for attr in ("key", "name", "idx"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
        else:
            parts.append(str(key))
    return "/".join(parts)


def layer_of(name: str) -> str:
    """The default block of a leaf: its parent's path (the layer: ``"conv1"`` for
    ``"conv1/kernel"``, ``"params/Dense_0"`` for ``"params/Dense_0/bias"``), or the leaf
    itself when it sits at the top (``"w1"`` of ``{"w1": ..., "b1": ...}``)."""
    head, sep, _ = name.rpartition("/")
    return head if sep else name


@jax.tree_util.register_pytree_node_class
class BlockOperator(HessianOperator):
    r"""The diagonal block :math:`A_{bb}` of a curvature operator :math:`A`, on the block's
    leaves only (``params`` is the list of them). A :class:`HessianOperator` in every
    respect; built by :func:`block_spectra`."""

    def __init__(self, base: HessianOperator, indices: tuple[int, ...]):
        self.base, self.indices = base, indices
        leaves = jax.tree.leaves(base.params)
        super().__init__(
            base.loss,
            [leaves[i] for i in indices],
            base.extra,
            base.data,
            base.batch_size,
            base.mesh,
        )

    @property
    def kind(self) -> str:  # type: ignore[override]
        return f"{self.base.kind} block"

    def tree_flatten(self):
        return (self.base,), self.indices

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(children[0], aux)

    def with_params(self, params: Any) -> BlockOperator:
        """The block at the point whose block leaves are ``params`` (the others unchanged)."""
        leaves, treedef = jax.tree.flatten(self.base.params)
        for i, x in zip(self.indices, params, strict=True):
            leaves[i] = x
        return BlockOperator(
            self.base.with_params(jax.tree.unflatten(treedef, leaves)), self.indices
        )

    def _matvec(self, v: Any) -> Any:
        base_leaves, treedef = jax.tree.flatten(self.base.params)
        full = [jnp.zeros_like(x) for x in base_leaves]
        for i, x in zip(self.indices, v, strict=True):
            full[i] = jnp.asarray(x, base_leaves[i].dtype)
        out = jax.tree.leaves(self.base._matvec(jax.tree.unflatten(treedef, full)))
        return [out[i] for i in self.indices]


class BlockSpectra(NamedTuple):
    """The spectra of the diagonal blocks, one row per block (see :func:`block_spectra`).

    Blocks of at most ``num_probes`` parameters are exact (dense ``eigh``, exact trace,
    standard error 0); larger ones come from Lanczos and Hutchinson.
    """

    names: list[str]  # the blocks, in the order of their first leaf (sorted keys in dicts)
    leaves: list[list[str]]  # the leaves of each block
    sizes: np.ndarray  # (n,) parameters per block
    eigenvalues: np.ndarray  # (n, k) top-k eigenvalues, descending (NaN past a block's size)
    converged: np.ndarray  # (n, k) bool
    trace: np.ndarray  # (n,) trace of the block
    trace_se: np.ndarray  # (n,) its standard error (0 where exact)
    curvature: str  # "hessian" | "ggn" | "fisher" (or the operator's kind)

    def table(self) -> dict[str, np.ndarray]:
        """Columns: ``block``, ``size``, ``lambda_1`` ... ``lambda_k``, ``trace``,
        ``trace_se``, ``mean_curvature`` (trace / size), ``converged``."""
        out: dict[str, Any] = {"block": np.asarray(self.names), "size": self.sizes}
        for j in range(self.eigenvalues.shape[1]):
            out[f"lambda_{j + 1}"] = self.eigenvalues[:, j]
        out["trace"] = self.trace
        out["trace_se"] = self.trace_se
        out["mean_curvature"] = self.trace / self.sizes
        out["converged"] = np.all(self.converged | np.isnan(self.eigenvalues), axis=1)
        return out

    def format(self) -> str:
        """The table as aligned text."""
        k = self.eigenvalues.shape[1]
        head = ["block", "size", *(f"lambda_{j + 1}" for j in range(k)), "trace", "+-", "conv"]
        rows = [head]
        for i, name in enumerate(self.names):
            lam = [f"{x:.4g}" if np.isfinite(x) else "-" for x in self.eigenvalues[i]]
            rows.append(
                [
                    name,
                    f"{self.sizes[i]:,}",
                    *lam,
                    f"{self.trace[i]:.4g}",
                    f"{self.trace_se[i]:.2g}",
                    "yes" if self.table()["converged"][i] else "NO",
                ]
            )
        widths = [max(len(r[c]) for r in rows) for c in range(len(head))]
        return "\n".join(
            "  ".join(
                c.ljust(w) if j == 0 else c.rjust(w)
                for j, (c, w) in enumerate(zip(r, widths, strict=True))
            )
            for r in rows
        )

    def __str__(self) -> str:
        return self.format()


def _partition(params: Any, blocks: Any) -> tuple[list[str], list[list[int]], list[list[str]]]:
    """Block names, and the leaf indices and leaf names of each, in order of appearance."""
    paths = [leaf_name(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)]
    if blocks is None:
        assign = [layer_of(n) for n in paths]
    elif callable(blocks):
        assign = []
        for n in paths:
            b = blocks(n)
            if b is not None and not isinstance(b, str):
                raise TypeError(
                    f"`blocks` must map a leaf path to a block name (str) or None, got {b!r} "
                    f"for {n!r}."
                )
            assign.append(b)
    elif isinstance(blocks, Mapping):
        assign = []
        for n in paths:
            hits = [name for name, pick in blocks.items() if _picks(pick, n)]
            if len(hits) > 1:
                raise ValueError(
                    f"`blocks`: the leaf {n!r} is in several blocks ({hits}); the blocks must "
                    "not overlap."
                )
            assign.append(hits[0] if hits else None)
    else:
        raise TypeError(
            "`blocks` must be None (one block per layer), a function of the leaf path "
            "(e.g. lambda path: path.split('/')[0]), or a dict block name -> a predicate of "
            f"the path or a list of leaf paths; got {type(blocks).__name__}."
        )
    names: list[str] = []
    index: dict[str, int] = {}
    members: list[list[int]] = []
    for i, b in enumerate(assign):
        if b is None:
            continue
        if b not in index:
            index[b] = len(names)
            names.append(b)
            members.append([])
        members[index[b]].append(i)
    if not names:
        raise ValueError(
            f"`blocks` selects no parameter; the leaf paths are {paths[:8]}"
            + (" ..." if len(paths) > 8 else "")
        )
    return names, members, [[paths[i] for i in m] for m in members]


def _picks(pick: Any, name: str) -> bool:
    if callable(pick):
        return bool(pick(name))
    if isinstance(pick, str):
        return name == pick or name.startswith(pick + "/")
    return name in pick


@functools.partial(jax.jit, static_argnames=("chunk",))
def _exact(op: HessianOperator, chunk: int):
    matrix = op.dense(chunk=chunk)
    return jnp.linalg.eigvalsh(matrix)[::-1], jnp.trace(matrix)


def block_spectra(
    loss_fn: Callable[..., jax.Array] | HessianOperator | tuple,
    params: Any = None,
    data: Any = None,
    *,
    blocks: Any = None,
    k: int = 1,
    curvature: str = "hessian",
    num_probes: int = 50,
    with_trace: bool = True,
    tol: float = 1e-4,
    batch_size: int | None = None,
    key: jax.Array | None = None,
) -> BlockSpectra:
    r"""Top eigenvalues and trace of each diagonal block of the Hessian (or GGN, Fisher).

    .. math::
       H_{bb} v_b = \big[H\,(0, \dots, v_b, \dots, 0)\big]_b

    Each block's top ``k`` eigenvalues come from Lanczos (:func:`eigenvalues`) on
    :math:`H_{bb}` and its trace from Hutchinson (:func:`trace`, ``num_probes`` probes);
    a block of at most ``num_probes`` parameters is computed exactly instead (its dense
    block from that many products, ``eigh``, the exact trace).

    Args:
      loss_fn: ``loss_fn(params, batch)`` for the Hessian; for ``curvature="ggn"`` or
        ``"fisher"`` the pair ``(apply_fn, output_loss)`` of :func:`ggn_operator`; or any
        curvature operator (then omit ``params`` and ``data``).
      params: a pytree of float arrays or an ``nnx.Module`` (its ``nnx.Param`` state).
      data: the data, as the operators take it.
      blocks: None: one block per layer (a leaf's parent path, ``"conv1"`` for
        ``"conv1/kernel"``; a leaf at the top of the tree is a block of its own); a
        function of the leaf path (``"conv1/kernel"``) returning the block name, or None
        to leave the leaf out; or a dict block name -> a predicate of the path, a path
        prefix, or a list of paths.
      k: eigenvalues per block (fewer where a block is smaller: NaN fills the row).
      curvature: ``"hessian"``, ``"ggn"`` or ``"fisher"``.
      num_probes: Hutchinson probes per block; blocks up to this size are exact.
      with_trace: estimate the trace of the larger blocks (``num_probes`` more products
        each); False leaves it NaN there, for the eigenvalues alone.
      tol: Lanczos relative residual tolerance.
      batch_size: examples per batch of the products.
      key: PRNG key.

    Returns:
      :class:`BlockSpectra` (``.table()``, ``.format()``; ``jol.plot.block_spectra``).

    Example:
      >>> import jax.numpy as jnp, jaxopt_lab as jol
      >>> f = lambda p: jnp.sum(jnp.array([1.0, 2.0]) * p["a"] ** 2) + 5.0 * p["b"] ** 2
      >>> s = jol.curvature.block_spectra(f, {"a": jnp.ones(2), "b": jnp.ones(())})
      >>> s.names, s.eigenvalues[:, 0].round(4).tolist()
      (['a', 'b'], [4.0, 10.0])
    """
    check_choice("curvature", curvature, CURVATURES)
    k = check_count(k, "k", fix="E.g. k=1 for each block's top eigenvalue.")
    num_probes = check_count(num_probes, "num_probes", minimum=2, fix="E.g. num_probes=50.")
    check_tolerance("tol", tol)
    check_bool("with_trace", with_trace)
    check_key(key, fix=" (or None)")
    key = jax.random.key(0) if key is None else key
    if isinstance(loss_fn, HessianOperator):
        op = as_operator(loss_fn, params, data, batch_size)
        kind = op.kind
    elif curvature == "hessian":
        op = as_operator(loss_fn, params, data, batch_size)
        kind = "hessian"
    else:
        if not (isinstance(loss_fn, tuple) and len(loss_fn) == 2):
            raise TypeError(
                f'`loss_fn` must be the pair (apply_fn, output_loss) with curvature="{curvature}" '
                f"(as ggn_operator takes them), got {type(loss_fn).__name__}."
            )
        build = ggn_operator if curvature == "ggn" else fisher_operator
        op = build(*loss_fn, params, data, batch_size=batch_size)
        kind = curvature
    names, members, leaves = _partition(op.params, blocks)
    n = len(names)
    values = np.full((n, k), np.nan)
    converged = np.zeros((n, k), bool)
    traces, ses = np.zeros(n), np.zeros(n)
    sizes = np.zeros(n, np.int64)
    for b, idx in enumerate(members):
        block = BlockOperator(op, tuple(idx))
        size = block.size
        sizes[b] = size
        kb = min(k, size)
        block_key = jax.random.fold_in(key, b)
        if size <= num_probes:
            vals, tr = _exact(block, chunk=min(size, 64))
            values[b, :kb] = np.asarray(vals[:kb], np.float64)
            converged[b, :kb] = True
            traces[b], ses[b] = float(tr), 0.0
        else:
            eig = eigenvalues(block, k=kb, tol=tol, key=block_key)
            values[b, :kb] = np.asarray(eig.values, np.float64)
            converged[b, :kb] = np.asarray(eig.converged)
            if with_trace:
                est = trace(block, num_probes=num_probes, key=jax.random.fold_in(block_key, 1))
                traces[b], ses[b] = float(est.estimate), float(est.standard_error)
            else:
                traces[b] = ses[b] = np.nan
    return BlockSpectra(
        names=names,
        leaves=leaves,
        sizes=sizes,
        eigenvalues=values,
        converged=converged,
        trace=traces,
        trace_se=ses,
        curvature=kind,
    )
