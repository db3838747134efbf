"""Row chunks of dask arrays, kept where they are computed, and work sent to them.

:class:`Chunks` turns aligned dask arrays (``X``, ``y``, ...) into one *part*
per row chunk, a tuple of NumPy arrays computed once on a worker (from the
arrays' own task graph: generated there, read from storage there) and held
there as a future.  Every later evaluation is a task per part, submitted
against the part's future so the scheduler runs it on the worker that holds
the part; only ``x`` (and ``v``) travel there and one d-sized result travels
back.  No task graph is built per evaluation: a ``client.submit`` per part
and one ``client.gather``, one round trip.

Without a ``distributed.Client`` the parts are computed by dask's default
scheduler into the calling process and the same functions run there (the
data is then in this process's memory, as any dask computation's result is).
"""

import numbers
import warnings

import numpy as np

#: errors of a call to a worker that died (the comm closed under it)
_LOST = (OSError, EOFError)


def is_dask_collection(a):
    """Whether ``a`` is a dask array (without importing dask when it is not)."""
    return type(a).__module__.split(".")[0] == "dask" and hasattr(a, "chunks")


def current_client():
    """The current ``distributed.Client``, or None (dask's default scheduler)."""
    try:
        from distributed import default_client
    except ImportError:  # pragma: no cover - distributed is in the dask extra
        return None
    try:
        return default_client()
    except ValueError:
        return None


def row_chunks(arrays, names):
    """Common row chunking of ``arrays`` (dask arrays); ValueError when they differ.

    Columns are gathered into one chunk per row block (a row block is the
    unit of work).  Unknown chunk sizes (``nan``, e.g. after boolean
    indexing) must be computed first.
    """
    first = None
    for a, name in zip(arrays, names, strict=True):
        if not is_dask_collection(a):
            raise TypeError(f"{name} must be a dask array; got {type(a).__name__}")
        if a.ndim < 1:
            raise ValueError(f"{name} must have at least one dimension; got shape {a.shape}")
        rc = a.chunks[0]
        if any(not isinstance(c, numbers.Integral) or c != c for c in rc):
            raise ValueError(
                f"{name} has unknown chunk sizes {rc}; call {name}.compute_chunk_sizes() first"
            )
        if first is None:
            first = (name, tuple(rc))
        elif tuple(rc) != first[1]:
            raise ValueError(
                f"the row chunks of {name} {tuple(rc)} do not line up with those of "
                f"{first[0]} {first[1]}; rechunk them alike, e.g. "
                f"{name} = {name}.rechunk({{0: {first[0]}.chunks[0]}})"
            )
    return first[1]


def _blocks(a):
    """Delayed objects of ``a``'s row blocks (all columns in one block)."""
    if a.ndim > 1:
        a = a.rechunk({k: -1 for k in range(1, a.ndim)})
    return list(a.to_delayed().reshape(-1))


def _make_part(prepare, *blocks):
    return prepare(*(np.asarray(b) for b in blocks))


def _default_prepare(*blocks):
    # writeable, C-ordered: what the compiled kernels are compiled for
    return tuple(np.require(b, requirements=["C", "W"]) for b in blocks)


class Chunks:
    """Aligned dask arrays, one part per row chunk, held by the workers.

    Parameters
    ----------
    arrays : tuple of dask arrays
        Same row chunks (ValueError naming the two that differ otherwise).
    names : tuple of str
        The arrays' names, for messages.
    prepare : callable or None
        ``prepare(*blocks) -> tuple of ndarray``, run on the worker on each
        row block (validation, dtype, target encoding); by default the blocks
        made C-ordered and writeable.
    client : distributed.Client, None or False
        None: the current client if there is one; False: dask's default
        scheduler in this process.

    Attributes
    ----------
    sizes : ndarray of int
        Rows per part.
    n : int
        Rows in all.
    """

    def __init__(self, arrays, names=None, prepare=None, client=None):
        import dask

        arrays = tuple(arrays)
        names = names or tuple(f"data[{k}]" for k in range(len(arrays)))
        self.sizes = np.array(row_chunks(arrays, names), dtype=np.int64)
        self.n = int(self.sizes.sum())
        if self.n == 0:
            raise ValueError(f"{names[0]} has no rows")
        self.client = current_client() if client is None else (client or None)
        self._groups = None
        self._actors = None
        self._actor_futures = None
        self._registered = set()
        #: evaluate through one actor per worker (direct worker calls, about
        #: 5 ms a round trip on the 2-core test machine against 20 ms for
        #: scheduled tasks); False: one task per worker per evaluation
        self.use_actors = True
        prepare = prepare or _default_prepare
        blocks = [_blocks(a) for a in arrays]
        delayed = [
            dask.delayed(_make_part, pure=True)(prepare, *bs) for bs in zip(*blocks, strict=True)
        ]
        if self.client is not None:
            from distributed import wait

            self.parts = self.client.compute(delayed)
            wait(self.parts)
            # a part's error (NaN in X, say) is raised here, as in memory;
            # the parts themselves stay on the workers
            for f in self.parts:
                if f.status == "error":
                    f.result()
        else:
            self.parts = list(dask.compute(*delayed))

    # ------------------------------------------------------------------
    def submit(self, fn, part, *args):
        """Run ``fn(part, *args)`` where ``part`` lives; a future (or the value)."""
        if self.client is None:
            return fn(part, *args)
        return self.client.submit(fn, part, *args, pure=False)

    def gather(self, handles):
        if self.client is None:
            return list(handles)
        return self.client.gather(handles)

    def map(self, fn, *args):
        """``[fn(part, *args) for part in parts]``, each where its part lives."""
        return self.gather([self.submit(fn, part, *args) for part in self.parts])

    def groups(self):
        """``[(worker or None, [part indices])]``: the parts grouped by holder."""
        if self.client is None:
            return [(None, list(range(len(self.parts))))]
        if self._groups is None:
            who = self.client.who_has(self.parts)
            by = {}
            for k, f in enumerate(self.parts):
                holders = sorted(who.get(f.key, ()))
                by.setdefault(holders[0] if holders else None, []).append(k)
            self._groups = sorted(by.items(), key=lambda kv: kv[1][0])
        return self._groups

    def weighted_sum(self, fn, *args):
        r""":math:`\sum_c (n_c / n)\, r_c` of the parts' results ``r_c = fn(part, *args)``.

        ``r_c`` is a float, an ndarray, or a tuple of them.  The weights are the
        parts' shares of the rows, so a per-part *mean* becomes the mean over
        all rows (and a per-part constant, a penalty, stays itself).

        One task per worker, not per part: the task sums its worker's parts
        (in part order) and only that partial sum travels; a task costs about
        a millisecond of scheduling, more than a part's kernel on small data.
        The partial sums are added in worker order, so a fit repeats to the
        bit while the parts stay where they are.
        """
        w = self.sizes / self.n
        if self.client is None:
            return _apply_group(self.parts, w, fn, *args)
        if self.use_actors:
            try:
                return self._actor_sum(fn, args)
            except _LOST as exc:  # a worker died: rebuild the actors once
                warnings.warn(
                    f"fastopt.distributed: lost a worker ({type(exc).__name__}); its chunks are "
                    "recomputed and the evaluation repeated",
                    RuntimeWarning,
                    stacklevel=3,
                )
                self._reset()
                return self._actor_sum(fn, args)
        return self._task_sum(fn, args)

    def _task_sum(self, fn, args):
        w = self.sizes / self.n
        handles = []
        for worker, idx in self.groups():
            parts = [self.parts[k] for k in idx]
            kw = {"workers": [worker], "allow_other_workers": True} if worker else {}
            handles.append(
                self.client.submit(_apply_group, parts, w[idx], fn, *args, pure=False, **kw)
            )
        return _add(self.client.gather(handles))

    def _actor_sum(self, fn, args):
        # fn is (kind, user function, x, ...): the user function is sent to
        # each actor once (pickling a numba dispatcher costs ~7 ms) and named
        # by a token afterwards
        actors = self._get_actors()
        if not args or not callable(args[0]):
            return _add([f.result() for f in [a.apply_direct(fn, *args) for a in actors]])
        kind, user, rest = fn, args[0], args[1:]
        token = id(user)
        futs = []
        for k, actor in enumerate(actors):
            if (k, token) not in self._registered:
                actor.register(token, user).result()
                self._registered.add((k, token))
            futs.append(actor.apply(kind, token, *rest))
        return _add([f.result() for f in futs])

    def _get_actors(self):
        if self._actors is None:
            w = self.sizes / self.n
            handles = []
            for worker, idx in self.groups():
                parts = [self.parts[k] for k in idx]
                kw = {"workers": [worker]} if worker else {}
                handles.append(
                    self.client.submit(_Evaluator, parts, w[idx], actor=True, pure=False, **kw)
                )
            self._actor_futures = handles
            self._actors = [h.result() for h in handles]
            self._registered = set()
        return self._actors

    def _reset(self):
        from distributed import wait

        self._actors = None
        self._actor_futures = None
        self._groups = None
        wait(self.parts)

    def close(self):
        """Release the parts (the workers drop them)."""
        if self.client is not None:
            for f in self._actor_futures or ():
                f.release()
            self._actors = None
            for f in self.parts:
                f.release()
        self.parts = []


class _Evaluator:
    """Holds one worker's parts and evaluates registered functions on them."""

    def __init__(self, parts, weights):
        self.parts = parts
        self.weights = weights
        self.fns = {}

    def register(self, token, fn):
        self.fns[token] = fn

    def apply(self, kind, token, *args):
        return _apply_group(self.parts, self.weights, kind, self.fns[token], *args)

    def apply_direct(self, fn, *args):
        return _apply_group(self.parts, self.weights, fn, *args)


def _apply_group(parts, weights, fn, *args):
    """``sum_k weights[k] * fn(parts[k], *args)`` (floats, arrays or tuples of them)."""
    acc = None
    for part, wc in zip(parts, weights, strict=True):
        r = fn(part, *args)
        if isinstance(r, tuple):
            r = tuple(wc * np.asarray(v, dtype=np.float64) for v in r)
            acc = r if acc is None else tuple(a + v for a, v in zip(acc, r, strict=True))
        else:
            r = wc * np.asarray(r, dtype=np.float64)
            acc = r if acc is None else acc + r
    return _finish(acc)


def _add(results):
    acc = results[0]
    for r in results[1:]:
        if isinstance(acc, tuple):
            acc = tuple(a + v for a, v in zip(acc, r, strict=True))
        else:
            acc = acc + r
    return _finish(acc)


def _finish(acc):
    if isinstance(acc, tuple):
        return tuple(_finish(a) for a in acc)
    acc = np.asarray(acc)
    return float(acc) if acc.ndim == 0 else acc
