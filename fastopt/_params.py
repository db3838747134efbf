r"""Structured parameters and parameter groups for the optimizer API.

``opt.init(params)`` and ``opt.step(params, grads, state)`` accept a dict,
list or tuple of arrays (nested containers too), as people who write their
own training loop hold them: a weight matrix and a bias per layer.  Every
array is updated in place (the user's array objects stay the same objects),
and the result equals stepping the concatenated flat vector bit for bit: the
rules are element-wise, and every element sees the same per-step
coefficients.

How a step runs (``Layout.runs``): the flat index range is cut into *runs*;
each run is one call of the compiled step kernel on a contiguous 1-D view of
the parameters, of the gradient and a contiguous ``(slots, length)`` block
of the state.

* Separate arrays (the usual case): one run per array, with no copy at all.
  A call costs about a microsecond, so a model of a few dozen arrays pays
  tens of microseconds per step beside the memory traffic.
* Packed parameters (:func:`pack`: every array a view of one buffer, in
  order): one run for the whole model, i.e. the flat step.  Gradients given
  as a flat vector or as views of one buffer are used in place; gradients
  given as separate arrays are first copied into one buffer (a gather: two
  more words moved per element, ~30% of an Adam step).
* Groups (torch's param groups) with other hyperparameters cut runs where
  the group changes: one run per maximal stretch of arrays in one group.

The state keeps the blocks of all runs in one buffer, so ``to_dict`` gives
the rows of the flat state (``state["exp_avg"]`` is the flat vector) and a
state saved from a flat run restores onto the structured parameters and back.
"""

import weakref

import numpy as np

from . import _device

_ND = np.ndarray

#: device views made by pack(): id(view) -> (weakref to the view, buffer,
#: offset); device arrays have no ``.base`` to find the buffer from (and
#: compare element-wise, so they cannot be WeakKeyDictionary keys)
_DEVICE_PACKS = {}


def _is_leaf(x):
    return isinstance(x, _ND) or _device.is_device_array(x)


def _flatten(tree, path, leaves, paths):
    if _is_leaf(tree):
        leaves.append(tree)
        paths.append(path)
    elif isinstance(tree, dict):
        for k, v in tree.items():
            _flatten(v, (*path, k), leaves, paths)
    elif isinstance(tree, list | tuple):
        for k, v in enumerate(tree):
            _flatten(v, (*path, k), leaves, paths)
    else:
        where = f"params[{_key(path)}]" if path else "params"
        raise TypeError(
            f"{where}: expected a numpy array (or a dict/list/tuple of them), "
            f"got {type(tree).__name__}"
        )


def flatten(tree):
    """``(leaves, paths)``: the arrays of ``tree`` in order and their key paths."""
    leaves, paths = [], []
    _flatten(tree, (), leaves, paths)
    return leaves, paths


def is_structured(x):
    return isinstance(x, dict | list | tuple)


def pack(params, dtype=None):
    """Copy ``params`` (a dict, list or tuple of arrays, nested) into one buffer.

    Returns the same structure whose arrays are views of one contiguous
    buffer, in order, so that :meth:`~fastopt.optim.Optimizer.step` updates
    the whole model in one pass of the compiled kernel, as for a flat vector
    (see :mod:`fastopt._params`).  ``dtype`` (default: the arrays' common
    dtype) must be float32 or float64.  The buffer itself is
    :func:`packed_buffer` ``(result)``.

    >>> import numpy as np, fastopt
    >>> params = fastopt.pack({"W": np.ones((2, 3)), "b": np.zeros(3)})
    >>> fastopt.packed_buffer(params).shape
    (9,)
    >>> params["b"][0] = 5.0
    >>> float(fastopt.packed_buffer(params)[6])
    5.0
    """
    leaves, _ = flatten(params)
    if not leaves:
        raise ValueError("params holds no arrays")
    on_device = not isinstance(leaves[0], _ND)
    if on_device != any(not isinstance(a, _ND) for a in leaves) or (
        on_device and not all(_device.is_device_array(a) for a in leaves)
    ):
        raise ValueError("params mix host and device arrays: pack one kind")
    if dtype is None:
        dtype = np.result_type(*(a.dtype for a in leaves))
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"params must be float32 or float64, got {dtype}")
    n = sum(int(np.prod(a.shape)) for a in leaves)
    if on_device:  # a device buffer and device views into it (see _DEVICE_PACKS)
        from .kernels import cuda as kc

        leaves = [kc.as_numba(a) for a in leaves]
        buf = _device.require_cuda().device_array(n, dtype=dtype)
    else:
        buf = np.empty(n, dtype=dtype)
    it = iter(range(len(leaves)))
    offsets = np.cumsum([0] + [int(np.prod(a.shape)) for a in leaves])

    def rebuild(tree):
        if _is_leaf(tree):
            k = next(it)
            a, b = int(offsets[k]), int(offsets[k + 1])
            view = buf[a:b].reshape(tuple(tree.shape))
            if on_device:
                src = leaves[k]
                if src.dtype != dtype:
                    src = _device.require_cuda().to_device(src.copy_to_host().astype(dtype))
                buf[a:b].copy_to_device(src.reshape(b - a))
                _DEVICE_PACKS[id(view)] = (weakref.ref(view), buf, a)
                weakref.finalize(view, _DEVICE_PACKS.pop, id(view), None)
            else:
                view[...] = tree
            return view
        if isinstance(tree, dict):
            return type(tree)((key, rebuild(v)) for key, v in tree.items())
        if isinstance(tree, tuple) and hasattr(tree, "_fields"):  # a NamedTuple
            return type(tree)(*(rebuild(v) for v in tree))
        return type(tree)(rebuild(v) for v in tree)

    return rebuild(params)


def packed_buffer(params):
    """The 1-D buffer of which every array of ``params`` is a consecutive view, or None."""
    leaves, _ = flatten(params)
    return _common_buffer(leaves)


def _common_buffer(leaves):
    """The 1-D array whose consecutive pieces the ``leaves`` are, in order, or None."""
    if not leaves:
        return None
    if not isinstance(leaves[0], _ND):  # device views from pack()
        pos, base = 0, None
        for a in leaves:
            entry = _DEVICE_PACKS.get(id(a))
            if entry is None or entry[0]() is not a:
                return None
            if (base is not None and entry[1] is not base) or entry[2] != pos:
                return None
            base = entry[1]
            pos += int(np.prod(a.shape))
        return base if pos == base.shape[0] else None
    base = leaves[0].base
    if not isinstance(base, _ND) or base.ndim != 1 or not base.flags.c_contiguous:
        return None
    start = base.__array_interface__["data"][0]
    pos = start
    for a in leaves:
        if a.base is not base or not a.flags.c_contiguous or a.dtype != base.dtype:
            return None
        if a.__array_interface__["data"][0] != pos:
            return None
        pos += a.nbytes
    if pos != start + base.nbytes:  # the views cover exactly the buffer
        return None
    return base


class Layout:
    """The structure of a params container, and how a step runs over it.

    Built by :meth:`Optimizer.init <fastopt.optim.Optimizer.init>` and kept
    in the state.  ``runs`` is a tuple of ``(start, end, group)`` over the
    flat index range; ``leaf_runs`` the leaves of each run.
    """

    def __init__(self, leaves, paths, group_of_leaf):
        self.paths = paths
        #: params on the device: runs are kernel launches (kernels/cuda.py)
        self.device = not isinstance(leaves[0], _ND)
        self.shapes = tuple(tuple(a.shape) for a in leaves)
        self.sizes = tuple(int(np.prod(a.shape)) for a in leaves)
        off = np.cumsum((0, *self.sizes))
        self.offsets = tuple(int(o) for o in off)
        self.n = self.offsets[-1]
        self.dtype = leaves[0].dtype
        self.group_of_leaf = tuple(group_of_leaf)
        self.leaves = list(leaves)
        self.base = _common_buffer(leaves)
        runs, leaf_runs = [], []
        if self.base is not None:
            # packed: one run per maximal stretch of one group
            for k, grp in enumerate(group_of_leaf):
                if runs and runs[-1][2] == grp:
                    runs[-1][1] = self.offsets[k + 1]
                    leaf_runs[-1].append(k)
                else:
                    runs.append([self.offsets[k], self.offsets[k + 1], grp])
                    leaf_runs.append([k])
        else:
            for k, grp in enumerate(group_of_leaf):
                runs.append([self.offsets[k], self.offsets[k + 1], grp])
                leaf_runs.append([k])
        self.runs = tuple(tuple(r) for r in runs)
        self.leaf_runs = tuple(tuple(r) for r in leaf_runs)
        self._x_views = self._views_of(leaves)
        self._gather = None  # gradient buffer of a packed layout, on demand
        self._blocks_of = (None, None)

    def _views_of(self, leaves):
        if self.base is not None:
            return tuple(self.base[s:e] for s, e, _ in self.runs)
        return tuple(a.reshape(n) for a, n in zip(leaves, self.sizes, strict=True))

    def check_leaves(self, leaves, paths, what):
        """Shapes, dtypes and key paths of ``leaves`` against this layout."""
        if paths != self.paths:
            raise ValueError(
                f"{what} has another structure than the params of init: "
                f"{_show(paths)} vs {_show(self.paths)}"
            )
        for a, shape, p in zip(leaves, self.shapes, paths, strict=True):
            if tuple(a.shape) != shape:
                raise ValueError(f"{what}[{_key(p)}] has shape {a.shape}; expected {shape}")
            if a.dtype != self.dtype:
                raise ValueError(f"{what}[{_key(p)}] is {a.dtype}; the params are {self.dtype}")

    def x_views(self, params):
        """1-D views of the runs of ``params`` (the user's arrays, updated in place)."""
        leaves, paths = flatten(params)
        same = len(leaves) == len(self.leaves) and all(
            a is b for a, b in zip(leaves, self.leaves, strict=True)
        )
        if same:
            return self._x_views
        self.check_leaves(leaves, paths, "params")
        for a, p in zip(leaves, paths, strict=True):
            if isinstance(a, _ND) == self.device:
                raise ValueError(f"params[{_key(p)}] moved between host and device since init")
            if not self.device and (not a.flags.c_contiguous or not a.flags.writeable):
                raise ValueError(f"params[{_key(p)}] must be contiguous and writeable")
        if self.base is not None and _common_buffer(leaves) is not self.base:
            raise ValueError("params were packed at init and are not the same buffer now")
        self.leaves = list(leaves)
        self._x_views = self._views_of(leaves)
        return self._x_views

    def g_views(self, grads):
        """1-D views (or gathered copies) of the gradient, run by run."""
        if self.device:
            return self._device_g_views(grads)
        if isinstance(grads, _ND):
            if grads.ndim != 1 or grads.shape[0] != self.n:
                raise ValueError(f"a flat gradient must have shape ({self.n},), got {grads.shape}")
            if grads.dtype != self.dtype:
                raise ValueError(f"g is {grads.dtype}; the params are {self.dtype}")
            g = np.ascontiguousarray(grads)
            return tuple(g[s:e] for s, e, _ in self.runs)
        leaves, paths = flatten(grads)
        self.check_leaves(leaves, paths, "grads")
        if self.base is None:
            return tuple(a.reshape(-1) if a.flags.c_contiguous else a.ravel() for a in leaves)
        gbase = _common_buffer(leaves)
        if gbase is not None:
            return tuple(gbase[s:e] for s, e, _ in self.runs)
        if self._gather is None:  # separate gradient arrays for packed params: gather
            self._gather = np.empty(self.n, dtype=self.dtype)
        buf = self._gather
        for a, s, e in zip(leaves, self.offsets[:-1], self.offsets[1:], strict=True):
            buf[s:e] = a.reshape(-1)
        return tuple(buf[s:e] for s, e, _ in self.runs)

    def _device_g_views(self, grads):
        from .kernels import cuda as kc

        if not is_structured(grads):  # one flat gradient (device, or host: uploaded)
            g = kc.as_grad(grads, _Len(self.n, self.dtype), where="g")
            return tuple(g[s:e] for s, e, _ in self.runs)
        leaves, paths = flatten(grads)
        self.check_leaves(leaves, paths, "grads")
        if self.base is None:
            return tuple(
                kc.as_grad(a.reshape(n), _Len(n, self.dtype), where=f"grads[{_key(p)}]")
                for a, n, p in zip(leaves, self.sizes, paths, strict=True)
            )
        gbase = _common_buffer(leaves)
        if gbase is not None:
            return tuple(gbase[s:e] for s, e, _ in self.runs)
        if self._gather is None:  # one device buffer, filled leaf by leaf
            self._gather = _device.require_cuda().device_array(self.n, dtype=self.dtype)
        buf = self._gather
        for a, n, s, p in zip(leaves, self.sizes, self.offsets[:-1], paths, strict=True):
            g = kc.as_grad(a.reshape(n), _Len(n, self.dtype), where=f"grads[{_key(p)}]")
            buf[s : s + n].copy_to_device(g)
        return tuple(buf[s:e] for s, e, _ in self.runs)

    def blocks(self, buf, nslots):
        """The contiguous ``(nslots, length)`` state block of every run, in ``buf``."""
        last, blocks = self._blocks_of
        if last is buf:
            return blocks
        blocks = tuple(buf[nslots * s : nslots * e].reshape(nslots, e - s) for s, e, _ in self.runs)
        self._blocks_of = (buf, blocks)
        return blocks

    def rows(self, buf, nslots):
        """The state as ``(nslots, n)`` rows of the flat vector (a copy)."""
        out = np.empty((nslots, self.n), dtype=buf.dtype)
        for (s, e, _), b in zip(self.runs, self.blocks(buf, nslots), strict=True):
            out[:, s:e] = b
        return out

    def from_rows(self, S):
        """The state buffer holding the flat rows ``S`` (shape ``(nslots, n)``)."""
        nslots = S.shape[0]
        buf = np.empty(nslots * self.n, dtype=S.dtype)
        for (s, e, _), b in zip(self.runs, self.blocks(buf, nslots), strict=True):
            b[...] = S[:, s:e]
        return buf


class _Len:
    """What ``kernels.cuda.as_grad`` reads of ``x``: its length and dtype."""

    def __init__(self, n, dtype=None):
        self.shape = (n,)
        self.dtype = dtype


def _key(path):
    return "][".join(repr(p) for p in path)


def _show(paths):
    shown = ", ".join(_key(p) for p in paths[:6])
    return f"[{shown}{', ...' if len(paths) > 6 else ''}]"


def resolve_groups(groups, paths):
    """The group index (0: the top-level options) of every leaf.

    Each group names entries of the params container: a key of a dict or an
    index of a list (top level), or a tuple path into nested containers; an
    entry that is itself a container names all its arrays.
    """
    group_of = [0] * len(paths)
    owner = {}
    for gi, names in enumerate(groups, start=1):
        for name in names:
            path = name if isinstance(name, tuple) else (name,)
            hit = [k for k, p in enumerate(paths) if p[: len(path)] == path]
            if not hit:
                raise ValueError(
                    f"groups[{gi - 1}] names {name!r}, which is not in the params "
                    f"(entries: {_show(paths)})"
                )
            for k in hit:
                if k in owner:
                    raise ValueError(
                        f"params[{_key(paths[k])}] is in two groups "
                        f"(groups[{owner[k] - 1}] and groups[{gi - 1}])"
                    )
                owner[k] = gi
                group_of[k] = gi
    return group_of
