"""Row chunks of dask arrays, kept where they are computed, and work sent to them.

:class:`Chunks` turns aligned dask arrays or DataFrames (``X``, ``y``, ...)
into one *part* per row chunk (a DataFrame's partition), a tuple of NumPy
arrays computed once on a worker (from the arrays' own task graph: generated
there, read from storage there) and held there as a future.  Every later
evaluation is a call of one actor per worker, which holds that worker's
parts: only ``x`` (and ``v``) travel there and one d-sized partial sum
travels back.  No task graph is built per evaluation: one round trip.
(Minibatch epochs are tasks submitted against the parts' futures, so that
the scheduler runs each where its part lives.)

Without a ``distributed.Client`` the parts are computed by dask's default
scheduler into the calling process and the same functions run there (the
data is then in this process's memory, as any dask computation's result is).
"""

import numbers
import time
import warnings

import numpy as np

#: errors of a call to a worker that died (the comm closed under it)
_LOST = (OSError, EOFError)


def is_dask_collection(a):
    """Whether ``a`` is a dask array, DataFrame or Series (without importing dask)."""
    return type(a).__module__.split(".")[0] in ("dask", "dask_expr") and (
        hasattr(a, "chunks") or hasattr(a, "npartitions")
    )


def is_dask_frame(a):
    """Whether ``a`` is a dask DataFrame or Series."""
    return is_dask_collection(a) and not hasattr(a, "chunks")


def _row_sizes(a):
    """Rows per row block of ``a``, ``nan`` where unknown (a DataFrame's partitions)."""
    if is_dask_frame(a):
        return (float("nan"),) * a.npartitions
    return tuple(a.chunks[0])


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


def _known(sizes):
    return all(isinstance(c, numbers.Integral) and c == c for c in sizes)


def row_chunks(arrays, names):
    """Common row chunking of ``arrays``; ValueError when they differ.

    ``arrays``: dask arrays, DataFrames or Series.  Returns the rows per
    row block, or None where some are unknown (a DataFrame's partitions, an
    array after boolean indexing): the parts then count their rows where
    they are computed, and a part whose arrays differ in rows is an error
    there.  Columns are gathered into one chunk per row block (a row block
    is the unit of work).
    """
    first = None
    known = True
    for a, name in zip(arrays, names, strict=True):
        if not is_dask_collection(a):
            raise TypeError(f"{name} must be a dask array or DataFrame; got {type(a).__name__}")
        if a.ndim < 1:
            raise ValueError(f"{name} must have at least one dimension; got shape {a.shape}")
        rc = _row_sizes(a)
        known = known and _known(rc)
        if first is None:
            first = (name, rc)
        elif len(rc) != len(first[1]):
            raise ValueError(
                f"the row chunks of {name} ({len(rc)} chunks) do not line up with those of "
                f"{first[0]} ({len(first[1])} chunks); rechunk or repartition them alike"
            )
        elif _known(rc) and _known(first[1]) and rc != first[1]:
            raise ValueError(
                f"the row chunks of {name} {rc} do not line up with those of "
                f"{first[0]} {first[1]}; rechunk them alike, e.g. "
                f"{name} = {name}.rechunk({{0: {first[0]}.chunks[0]}})"
            )
    return first[1] if known else None


def _blocks(a):
    """Delayed objects of ``a``'s row blocks (all columns in one block)."""
    if is_dask_frame(a):  # pandas partitions: ``prepare`` sees them as they are
        return list(a.to_delayed())
    if a.ndim > 1:
        a = a.rechunk({k: -1 for k in range(1, a.ndim)})
    return list(a.to_delayed().reshape(-1))


def _make_part(prepare, names, *blocks):
    rows = [len(b) for b in blocks]
    for name, r in zip(names[1:], rows[1:], strict=True):
        if r != rows[0]:
            raise ValueError(
                f"the row chunks of {name} do not line up with those of {names[0]}: a chunk "
                f"has {r} rows in {name} and {rows[0]} in {names[0]}; partition them alike"
            )
    return prepare(*blocks)


def _part_rows(part):
    return int(len(part[0]))


def _default_prepare(*blocks):
    # writeable, C-ordered: what the compiled kernels are compiled for
    return tuple(np.require(b, requirements=["C", "W"]) for b in blocks)


class Chunks:
    """Aligned dask arrays or DataFrames, one part per row chunk, held by the workers.

    Parameters
    ----------
    arrays : tuple of dask arrays, DataFrames or Series
        Same row chunks (ValueError naming the two that differ otherwise; a
        DataFrame's partitions count their rows on the workers).
    names : tuple of str
        The arrays' names, for messages.
    prepare : callable or None
        ``prepare(*blocks) -> tuple of ndarray``, run on the worker on each
        row block (NumPy arrays, or pandas objects for a DataFrame's
        partitions): validation, dtype, target encoding.  By default the
        blocks as NumPy arrays, C-ordered and writeable.
    client : distributed.Client, None or False
        None: the current client if there is one; False: dask's default
        scheduler in this process.

    Attributes
    ----------
    sizes : ndarray of int
        Rows per part (counted on the workers where the arrays do not know
        them; row blocks without rows are left out).
    n : int
        Rows in all.
    """

    def __init__(self, arrays, names=None, prepare=None, client=None):
        import dask

        arrays = tuple(arrays)
        names = tuple(names or (f"data[{k}]" for k in range(len(arrays))))
        sizes = row_chunks(arrays, names)
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
            dask.delayed(_make_part, pure=True)(prepare, names, *bs)
            for bs in zip(*blocks, strict=True)
        ]
        if self.client is not None:
            self.parts = self.client.compute(delayed)
            self._wait(self.parts)
        else:
            self.parts = list(dask.compute(*delayed))
        if sizes is None:  # counted where the parts are: only integers travel
            sizes = self.map(_part_rows)
        self.sizes = np.array(sizes, dtype=np.int64)
        self.n = int(self.sizes.sum())
        if self.n == 0:
            raise ValueError(f"{names[0]} has no rows")
        if np.any(self.sizes == 0):  # a part's mean over no rows is 0/0
            keep = np.flatnonzero(self.sizes)
            self._release([f for k, f in enumerate(self.parts) if self.sizes[k] == 0])
            self.parts = [self.parts[k] for k in keep]
            self.sizes = self.sizes[keep]

    def _wait(self, futures):
        from distributed import wait

        wait(futures)
        # a part's error (NaN in X, say) is raised here, as in memory; the
        # parts themselves stay on the workers
        for f in futures:
            if f.status == "error":
                f.result()

    def _release(self, futures):
        if self.client is not None:
            for f in futures:
                f.release()

    def transform(self, fn, *args):
        """Replace every part by ``fn(part, *args)``, computed where the part lives.

        Before the first evaluation (the evaluators hold the parts they were
        given).  The new parts keep the old ones' lineage: a lost worker's
        parts are recomputed from the arrays' task graph.
        """
        if self._actors is not None:
            raise RuntimeError("Chunks.transform after the first evaluation")
        if self.client is None:
            self.parts = [fn(part, *args) for part in self.parts]
            return
        new = [self.client.submit(fn, part, *args, pure=False) for part in self.parts]
        self._wait(new)
        self._release(self.parts)
        self.parts = new
        self._groups = None

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
        token = self._token(actors, args[0])
        return _add([f.result() for f in [a.apply(fn, token, *args[1:]) for a in actors]])

    def _token(self, actors, user):
        """The token of the function ``user`` on every actor, sent there the first time."""
        token = id(user)
        for k, actor in enumerate(actors):
            if (k, token) not in self._registered:
                actor.register(token, user).result()
                self._registered.add((k, token))
        return token

    def timed_sum(self, fn, *args):
        """:meth:`weighted_sum` through the actors, and each worker's compute time.

        Returns ``(result, seconds)``: ``seconds[k]`` is the time worker ``k``
        spent in ``fn`` over its parts, measured inside the same actor call
        (``benchmarks/dask_compare.py`` splits a round trip with it).
        """
        actors = self._get_actors()
        token = self._token(actors, args[0])
        out = [f.result() for f in [a.apply_timed(fn, token, *args[1:]) for a in actors]]
        return _add([r for r, _ in out]), [t for _, t in out]

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

    def apply_timed(self, kind, token, *args):
        t = time.perf_counter()
        r = _apply_group(self.parts, self.weights, kind, self.fns[token], *args)
        return r, time.perf_counter() - t


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
