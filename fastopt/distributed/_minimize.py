r"""``fastopt.distributed.minimize``: an objective that is a mean over the rows of dask arrays.

Full batch (every method without ``batch_size``): :func:`fastopt.minimize` runs
the method on the client with a Python ``fg`` whose every call is one round
trip: ``x`` goes to each part's worker, the part's loss and gradient come
back, and the client sums them weighted by the parts' row shares,

.. math::

    f(x) = \sum_c \frac{n_c}{n} f_c(x), \qquad f_c(x) = \frac{1}{n_c}
    \sum_{i \in c} \ell_i(x) + r(x),

so a row-independent term :math:`r` (a penalty) computed by every part
stays itself.  Curvature products (``gauss_newton``, ``hessp``) and
diagonals (``diagonal``) are reduced the same way.

Minibatch (a first-order method with ``batch_size``): the model moves to the
data.  An epoch visits the parts in a shuffled order; the task of part ``c``
receives ``x`` and the optimizer's state from the previous part's task
(worker to worker; the client only submits the chain), runs the part's
batches in the same compiled minibatch loop as :func:`fastopt.minimize`, and
passes ``x`` and the state on.  The batch order (:func:`batch_order`):

* a SplitMix64 generator seeded with ``seed`` shuffles the part order at the
  start of every epoch (Fisher-Yates, the in-memory drivers' shuffle);
* each visited part then draws the next generator output as the seed of its
  own row permutation, which it shuffles on its worker;
* the part's rows are cut into batches of ``batch_size`` in that order (its
  last batch may be smaller).

With ``shuffle=False`` parts and rows keep their order.  An in-memory run
over the same batches (:func:`batch_order` gives them) takes the same steps
with the same bits.
"""

import numpy as np
from numba.core.registry import CPUDispatcher
from scipy.optimize import OptimizeResult

from .. import _status
from .._batching import seed_state, shuffle, splitmix64
from .._minimize import get_method
from .._minimize import minimize as _minimize
from ._chunks import Chunks

#: options of the minibatch driver (the rest are the rule's hyperparameters)
_MINIBATCH_OPTIONS = ("batch_size", "epochs", "shuffle", "seed", "maxiter", "gtol", "schedule")


# ---------------------------------------------------------------------------
# work done on the worker that holds a part (module functions: they pickle
# by reference)
# ---------------------------------------------------------------------------


def _fg_part(part, fn, x, args):
    f, g = fn(x, *part, *args)
    return float(f), np.asarray(g)


def _prod_part(part, fn, x, v, args):
    return np.asarray(fn(x, v, *part, *args))


def _diag_part(part, fn, x, args):
    return np.asarray(fn(x, *part, *args))


_OPTIMIZERS = {}


def _worker_optimizer(method, rule_opts):
    from ..optim import optimizer

    key = (method, tuple(sorted(rule_opts.items(), key=lambda kv: kv[0])))
    try:
        return _OPTIMIZERS[key]
    except (KeyError, TypeError):  # TypeError: an unhashable option (a schedule)
        opt = optimizer(method, **rule_opts)
        try:
            _OPTIMIZERS[key] = opt
        except TypeError:
            pass
        return opt


def _run_part(part, prev, fg, args, method, rule_opts, batch_size, perm_seed, do_shuffle,
              maxiter):  # fmt: skip
    """Run the batches of one part from the previous part's result ``prev``.

    ``prev = (carry, loss_sum, rows)`` with ``carry = (x, S, t, f_prev,
    status, nfev)``.  Returns the same triple: the new carry and the sum of
    this part's batch losses times the batch sizes (for the epoch loss).
    """
    from ..drivers import first_order as fo
    from ..kernels import cpu

    carry = prev[0]
    x, S, t, f_prev, status, nfev = carry
    if status != fo.RUNNING:
        return carry, 0.0, 0
    # copies: the carry we got may be another task's stored result
    x = x.copy()
    S = S.copy()
    opt = _worker_optimizer(method, rule_opts)
    if isinstance(fg, CPUDispatcher):
        _, (loop, first) = fo.compiled_loops(opt.kid, fg)
    else:
        loop, first = fo.minibatch_loop, (fg,)
    full = (*part, *args)
    n_c = part[0].shape[0]
    perm = np.arange(n_c)
    if do_shuffle:
        shuffle(perm, seed_state(perm_seed))
    c = np.zeros(cpu.N_COEFFS, dtype=x.dtype)
    x_good = x.copy()
    lb = ub = np.zeros(x.shape[0], x.dtype)
    rng = np.uint64(0)
    n_batches = -(-n_c // batch_size)
    loss_sum = 0.0
    rows = 0
    for b in range(n_batches):
        # one step per call: the batch loss of every step is needed for the
        # epoch loss (the in-memory driver with a callback does the same)
        lrs = fo.lr_table(opt, t, 1)
        status, t, _, _, rng, nfev, f_prev = loop(
            *first, x, full, opt.kid, S, opt.h, c, lrs, t, x_good, lb, ub, False,
            t, 1, maxiter, perm, rng, False, batch_size, 0, b, 1, nfev, f_prev,
        )  # fmt: skip
        if status != fo.RUNNING:
            break
        size = min(batch_size, n_c - b * batch_size)
        loss_sum += float(f_prev) * size
        rows += size
    return (x, S, t, float(f_prev), int(status), int(nfev)), loss_sum, rows


# ---------------------------------------------------------------------------
# the client side
# ---------------------------------------------------------------------------


def part_orders(sizes, seed, epoch, do_shuffle=True):
    """``[(part, row_seed), ...]``: the visiting order of epoch ``epoch`` (0-based).

    See the module docstring.  ``row_seed`` seeds the part's own row
    permutation (:func:`fastopt._batching.shuffle` of ``arange(n_c)``).
    """
    rng = seed_state(seed)
    order = np.arange(len(sizes))
    out = None
    for _ in range(epoch + 1):
        if do_shuffle:
            order = np.arange(len(sizes))
            rng = np.uint64(shuffle(order, rng))
        out = []
        for c in order:
            if do_shuffle:
                rng, r = splitmix64(rng)
                rng = np.uint64(rng)
                out.append((int(c), np.uint64(r)))
            else:
                out.append((int(c), np.uint64(0)))
    return out


def batch_order(sizes, batch_size, seed, epoch, do_shuffle=True):
    """The batches of epoch ``epoch`` as arrays of global row indices.

    For an in-memory run over the same batches as :func:`minimize`'s
    minibatch mode (tests, and users checking a distributed fit).
    """
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    batches = []
    for c, r in part_orders(sizes, seed, epoch, do_shuffle):
        perm = np.arange(sizes[c])
        if do_shuffle:
            shuffle(perm, seed_state(r))
        for b in range(0, sizes[c], batch_size):
            batches.append(starts[c] + perm[b : b + batch_size])
    return batches


def _as_chunks(data, prepare, client):
    if isinstance(data, Chunks):
        return data, False
    if not isinstance(data, tuple | list):
        data = (data,)
    names = ("X", "y") if len(data) == 2 else None
    return Chunks(data, names=names, prepare=prepare, client=client), True


def minimize(fg_chunk, x0, data, args=(), method="lbfgs", *, gauss_newton=None, hessp=None,
             diagonal=None, callback=None, options=None, prepare=None, client=None):  # fmt: skip
    r"""Minimize a mean over the rows of dask arrays, each chunk on its worker.

    Parameters
    ----------
    fg_chunk : callable
        ``fg_chunk(x, *part, *args) -> (f, g)``: the *mean* loss over the rows
        of one part (the row chunk of every array of ``data``, as NumPy
        arrays) and its gradient, plus any row-independent term (a penalty),
        which the weighted sum keeps as it is.  An ``@njit`` function is run
        compiled on the workers (and in minibatch mode in fastopt's compiled
        loop).  It must pickle (a module-level function does).
    x0 : ndarray, shape (d,)
    data : tuple of dask arrays, or :class:`Chunks`
        Arrays with the same row chunks (e.g. ``(X, y)``).  A :class:`Chunks`
        is reused as it is (its parts already on the workers).
    args : tuple
        Further arguments of ``fg_chunk`` (sent with every task: keep them
        small).
    method : str
        Any name of :data:`fastopt.METHODS`.  Full batch (no ``batch_size``
        option) every method runs through :func:`fastopt.minimize`; with
        ``batch_size`` a first-order method runs minibatch epochs on the
        workers (see the module docstring).
    gauss_newton, hessp, diagonal : callable, optional
        ``gauss_newton(x, v, *part, *args)``, ``hessp(x, v, *part, *args)``,
        ``diagonal(x, *part, *args)``: the per-part mean curvature product or
        diagonal, reduced like ``fg_chunk`` and passed to the method (the
        ``gauss_newton`` and ``diagonal`` options of ``hessian-free``,
        ``hessp`` and ``diagonal`` of ``adahessian``, ``hessp`` of ``scg``).
    callback : callable, optional
        Full batch: as :func:`fastopt.minimize`'s.  Minibatch:
        ``callback(intermediate_result)`` after every epoch, with ``x``,
        ``fun`` (the epoch's mean batch loss), ``nit`` and ``epoch``;
        raising ``StopIteration`` ends the run (status 99).
    options : dict, optional
        As :func:`fastopt.minimize`'s.  Minibatch: ``batch_size``, ``epochs``
        (default 1), ``shuffle`` (default True), ``seed``, ``maxiter``,
        ``schedule`` and the rule's hyperparameters.
    prepare : callable, optional
        ``prepare(*blocks) -> tuple of ndarray`` run once on every part on its
        worker (validation, conversion); see :class:`Chunks`.
    client : distributed.Client, None or False
        None: the current client, else dask's default scheduler in this
        process; False: dask's default scheduler.

    Returns
    -------
    res : scipy.optimize.OptimizeResult
        :func:`fastopt.minimize`'s result.  Minibatch: ``fun`` and ``jac`` at
        the final ``x`` on all rows, ``nit`` steps, ``epochs``; a failed run
        (NaN/inf) keeps the last iterate with finite values, as in memory.

    Examples
    --------
    A least-squares fit whose rows stay in their chunks:

    >>> import numba, numpy as np, dask.array as da
    >>> from fastopt.distributed import minimize
    >>> @numba.njit
    ... def fg(w, X, y):
    ...     r = X @ w - y
    ...     return 0.5 * (r @ r) / len(y), X.T @ r / len(y)
    >>> X = da.random.default_rng(0).normal(size=(1000, 3), chunks=250)
    >>> y = X @ np.array([1.0, -2.0, 0.5])
    >>> res = minimize(fg, np.zeros(3), data=(X, y), method="lbfgs", client=False)
    >>> res.success, np.round(res.x, 6)
    (True, array([ 1. , -2. ,  0.5]))
    """
    chunks, own = _as_chunks(data, prepare, client)
    try:
        opts = dict(options or {})
        entry = get_method(method)
        if opts.get("batch_size") is not None and entry.kind == "first-order":
            return _minibatch(fg_chunk, x0, chunks, tuple(args), entry.name, opts, callback)
        if opts.get("batch_size") is not None:
            raise ValueError(
                f"batch_size: method {entry.name!r} runs full batch on dask arrays "
                "(minibatch mode is for the first-order rules)"
            )
        return _full_batch(fg_chunk, x0, chunks, tuple(args), entry.name, opts, callback,
                           gauss_newton, hessp, diagonal)  # fmt: skip
    finally:
        if own:
            chunks.close()


def reducers(chunks, fg_chunk, args, gauss_newton=None, hessp=None, diagonal=None):
    """Python ``fg(x)``, ``gn(x, v)``, ``hessp(x, v)``, ``diag(x)`` over all parts."""

    def fg(x):
        return chunks.weighted_sum(_fg_part, fg_chunk, x, args)

    def product(fn):
        if fn is None:
            return None
        return lambda x, v: chunks.weighted_sum(_prod_part, fn, x, v, args)

    diag = None
    if diagonal is not None:

        def diag(x):
            return chunks.weighted_sum(_diag_part, diagonal, x, args)

    return fg, product(gauss_newton), product(hessp), diag


def _full_batch(fg_chunk, x0, chunks, args, method, opts, callback, gauss_newton, hessp,
                diagonal):  # fmt: skip
    fg, gn, hp, diag = reducers(chunks, fg_chunk, args, gauss_newton, hessp, diagonal)
    if gn is not None:
        opts["gauss_newton"] = gn
    if diag is not None:
        opts["diagonal"] = diag
    return _minimize(fg, x0, method=method, jac=True, hessp=hp, options=opts, callback=callback)


def _minibatch(fg_chunk, x0, chunks, args, method, opts, callback):
    from ..drivers import first_order as fo
    from ..optim import optimizer

    batch_size = int(opts["batch_size"])
    if batch_size < 1:
        raise ValueError(f"Invalid batch_size value: {batch_size}")
    epochs = int(opts.get("epochs") or 1)
    do_shuffle = bool(opts.get("shuffle", True))
    seed = opts.get("seed")
    maxiter = opts.get("maxiter")
    maxiter = np.iinfo(np.int64).max if maxiter is None else int(maxiter)
    rule_opts = {k: v for k, v in opts.items() if k not in _MINIBATCH_OPTIONS}
    if opts.get("schedule") is not None:
        rule_opts["schedule"] = opts["schedule"]
    opt = optimizer(method, **rule_opts)  # validates here, before any work is sent
    x = np.array(x0, dtype=np.float64).reshape(-1)
    state = opt.init(x)
    carry = (x, state.slots, 0, np.nan, fo.RUNNING, 0)
    status = fo.RUNNING
    epoch = 0
    while status == fo.RUNNING:
        if epoch >= epochs:
            status = _status.EPOCHS
            break
        # one chain of tasks per epoch: each part's task gets the previous
        # one's carry (worker to worker); one round trip for the epoch
        handles = []
        prev = (carry, 0.0, 0)
        for c, r in part_orders(chunks.sizes, seed, epoch, do_shuffle):
            h = chunks.submit(_run_part, chunks.parts[c], prev, fg_chunk, args, method,
                              rule_opts, batch_size, r, do_shuffle, maxiter)  # fmt: skip
            handles.append(h)
            prev = h
        results = chunks.gather(handles)
        carry = results[-1][0]
        status = carry[4]
        rows = sum(r[2] for r in results)
        loss = sum(r[1] for r in results) / max(rows, 1)
        epoch += 1
        if status != fo.RUNNING:
            break
        if callback is not None:
            ir = OptimizeResult(x=carry[0].copy(), fun=loss, nit=carry[2], epoch=epoch)
            try:
                callback(intermediate_result=ir)
            except StopIteration:
                status = _status.CALLBACK
    x = carry[0]
    fg, _, _, _ = reducers(chunks, fg_chunk, args)
    f, g = fg(x)
    res = OptimizeResult(
        x=x, fun=f, jac=g, nit=int(carry[2]), nfev=int(carry[5]), njev=int(carry[5]),
        status=int(status), success=status in _status.SUCCESSFUL,
        message=_status.MESSAGES[status], epochs=epoch,
    )  # fmt: skip
    res.state = state._replace(count=int(carry[2]), slots=carry[1])
    return res
