"""Starting, stopping and reporting a solver run (the plumbing around a loop).

The loops run at most ``nsteps`` iterations and hand their state back, so
:func:`drive` can run them in chunks of about 0.1 s (Ctrl-C stops a compiled
run between two), or one iteration at a time when a callback or
``return_all`` needs Python between iterations; :func:`result`
builds what :func:`fastopt.minimize` turns into an ``OptimizeResult``.
"""

import math
import time

import numpy as np

from .._batching import check_batch_args, seed_state, shuffle
from .._status import CALLBACK, NONFINITE_F, NONFINITE_G
from ._lazy_loop import dual
from ._vectors import inf_norm

#: a loop's status while it still has iterations to run
RUNNING = -1

#: ``nsteps`` for a chunk that runs to the end (larger than any maxiter)
ALL_STEPS = 2**62

#: Without a callback a run goes to Python between chunks of iterations, so
#: that Ctrl-C (a KeyboardInterrupt, raised once the interpreter runs again:
#: never inside nopython code) stops a compiled run within about
#: CHUNK_SECONDS.  The first chunk has FIRST_CHUNK iterations, so a short
#: run (2-D Rosenbrock: 23-61 iterations) is still one call: one more call
#: into a compiled loop costs about 3 us, 10% of SCG's 27 us solve.  A solver
#: whose single iteration can be long (Hessian-free: up to 250 products) asks
#: for a first chunk of 1.  Each next chunk is sized from the last one's time
#: to take about CHUNK_SECONDS, growing at most CHUNK_GROWTH-fold.
CHUNK_SECONDS = 0.1
FIRST_CHUNK = 64
CHUNK_GROWTH = 8


def reject_bounds(obj, method):
    """Raise ValueError when bounds were given to a method that has none."""
    if obj.lb is not None or obj.ub is not None:
        raise ValueError(
            f"method '{method}' does not support bounds; use method='lbfgs' (L-BFGS-B) for bounds"
        )


def reject_batches(obj, method):
    """Raise ValueError when minibatch options were given to a full-batch method."""
    if obj.batch_size is not None or obj.epochs is not None:
        raise ValueError(f"method '{method}' is a full-batch method and takes no batch_size "
                         "or epochs")  # fmt: skip


def start_point(obj):
    """A float64 copy of ``obj.x0`` (the solvers compute in float64)."""
    return np.array(obj.x0, dtype=np.float64)


def initial_fg(obj, x, args):
    """``(f, g)`` at ``x`` as a Python float and a float64 array."""
    f, g = obj.fg(x, *args)
    return float(f), np.array(g, dtype=np.float64)


def start_fg(obj, x, args):
    """``(f, g, reused)`` at the start ``x``, as :func:`initial_fg`.

    :func:`fastopt.minimize` has evaluated ``fg`` at ``x0`` already, to check
    its return types (``obj.first``); reusing that saves one evaluation
    (``reused`` is True, and the result says so with ``used_first``).  Only
    for a float64 ``x0``: the solvers compute in float64, and a float32
    ``x0`` was evaluated in float32.
    """
    first = obj.first
    if first is not None and obj.x0.dtype == np.float64:
        return float(first[0]), np.array(first[1], dtype=np.float64), True
    f, g = initial_fg(obj, x, args)
    return f, g, False


def nonfinite_fg(f, g):
    """The status for a non-finite ``f`` or ``g`` (0 when both are finite)."""
    if not math.isfinite(f):
        return NONFINITE_F
    # max |g| is finite exactly when every entry is: the kernel the solvers'
    # loops use anyway (all_finite would be one more to compile in a new process)
    if not math.isfinite(inf_norm(g)):
        return NONFINITE_G
    return 0


def drive(advance, current, obj, x0, first_chunk=FIRST_CHUNK):
    """Run a chunked loop: in chunks of about 0.1 s, or one iteration at a time.

    Chunks let Ctrl-C stop a compiled run (:func:`advance_in_chunks`); a
    callback or ``return_all`` needs Python after every iteration.

    Parameters
    ----------
    advance : callable
        ``advance(nsteps) -> status`` runs at most ``nsteps`` iterations and
        returns :data:`RUNNING` when all of them ran without a stop.
    current : callable
        ``current() -> (x, f, g, nit)``, the state after the last iteration.
    obj : Objective
        Supplies ``callback`` and ``return_all``.
    x0 : ndarray
        The start, first entry of ``allvecs``.
    first_chunk : int
        Iterations in the first chunk (see :data:`FIRST_CHUNK`).

    Returns
    -------
    status : int
    allvecs : list of ndarray or None
    """
    if obj.callback is None and not obj.return_all:
        return advance_in_chunks(advance, first_chunk), None
    allvecs = [x0.copy()] if obj.return_all else None
    while True:
        status = interruptible(advance, 1)
        if status != RUNNING:
            return status, allvecs
        x, f, g, nit = current()
        if allvecs is not None:
            allvecs.append(x.copy())
        if obj.callback is not None:
            try:
                obj.callback(x.copy(), f, g.copy(), nit)
            except StopIteration:
                return CALLBACK, allvecs


def interruptible(advance, nsteps):
    """``advance(nsteps)``, with a Ctrl-C inside it raised as KeyboardInterrupt.

    Some compiled loops call back into the interpreter (numba unpickles
    constants there); a pending Ctrl-C raises in that call and numba wraps
    it in a SystemError ("returned a result with an exception set").
    """
    try:
        return advance(nsteps)
    except SystemError as exc:
        cause = exc
        while cause is not None:
            if isinstance(cause, KeyboardInterrupt):
                raise KeyboardInterrupt from exc
            cause = cause.__cause__ or cause.__context__
        raise


def advance_in_chunks(advance, first_chunk=FIRST_CHUNK):
    """Run ``advance`` to its end in chunks of about :data:`CHUNK_SECONDS`.

    The loops keep their whole state in the arrays they update, and a
    chunk's boundary changes no iterate (the stop tests run at the top of
    an iteration), so the chunks only give the interpreter a chance to
    raise KeyboardInterrupt: the run then ends with that exception, as a
    Python loop would, and no partial result is returned.
    """
    nsteps = first_chunk
    while True:
        start = time.perf_counter()
        status = interruptible(advance, nsteps)
        if status != RUNNING:
            return status
        elapsed = time.perf_counter() - start
        aim = nsteps * CHUNK_SECONDS / elapsed if elapsed > 0.0 else math.inf
        nsteps = int(max(1.0, min(CHUNK_GROWTH * nsteps, aim)))


def grad_fev(obj):
    """Function evaluations per ``obj.grad`` call: 1 when it evaluates ``fun`` too."""
    return 1 if obj.grad_calls_fun else 0


def result(x, f, g, status, nit, nfev, njev, nhev, allvecs, used_first=False):
    """The solver's result dict (``allvecs`` only when it was kept).

    ``used_first``: the first evaluation was ``obj.first`` (see
    :func:`start_fg`), so :func:`fastopt.minimize` does not count its own
    check call again.
    """
    out = {
        "x": x,
        "fun": float(f),
        "jac": g,
        "status": int(status),
        "nit": int(nit),
        "nfev": int(nfev),
        "njev": int(njev),
        "nhev": int(nhev),
    }
    if allvecs is not None:
        out["allvecs"] = allvecs
    if used_first:
        out["used_first"] = True
    return out


@dual
def next_batch(perm, pos, batch_size, state, do_shuffle):
    """The next minibatch of sample indices, reshuffling at each epoch start.

    ``pos`` is the start of the batch in ``perm``; an epoch is
    ``ceil(N / batch_size)`` batches, the last one possibly short (as in the
    first-order minibatch driver).  Returns ``(idx, pos, state, new_epoch)``;
    ``new_epoch`` is True when this batch starts an epoch.
    """
    n = perm.shape[0]
    new_epoch = pos >= n or pos == 0
    if pos >= n:
        pos = 0
    if pos == 0 and do_shuffle:
        # np.uint64(): called from Python the kernel returns an int, which the
        # next call would type as int64 (signed shifts: another stream).
        state = np.uint64(shuffle(perm, state))
    stop = min(pos + batch_size, n)
    idx = perm[pos:stop].copy()
    return idx, stop, state, new_epoch


def batch_setup(obj, args, salt):
    """Permutation, generator state and sample count for minibatch mode.

    ``salt`` separates the generator streams of different uses (curvature
    batches, gradient batches) that share ``obj.seed``.
    """
    n_samples = check_batch_args(args)
    perm = np.arange(n_samples, dtype=np.int64)
    state = seed_state(obj.seed) ^ np.uint64(salt)
    return perm, state, n_samples
