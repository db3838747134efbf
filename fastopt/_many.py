r"""``fastopt.minimize_many``: many small problems in one compiled call.

Scientists fit thousands of small models at once (a curve per pixel,
spectrum or cell).  In a Python loop of :func:`fastopt.minimize` most of the
time of such a fit is the fixed cost of a call; here one compiled function
loops over the problems, each with its own solver state and its own stop,
and runs them on numba's threads when there are enough of them.

Each problem runs the very loop :func:`fastopt.minimize` runs for it (the
solvers' loop sources, compiled with the user's function built in: see
:class:`fastopt.solvers._lazy_loop.LazyLoop` and
:func:`fastopt.drivers.first_order.compiled_loops`), started the same way,
so each problem's result is the one ``minimize`` gives on that problem
alone, iterate for iterate.  Only the per-problem set-up (allocating the
state, the first evaluation) is written here.
"""

import math
import types
import warnings

import numba
import numpy as np

from . import _jit, _status
from ._methods import COMMON, get_method
from ._validation import as_bounds, is_jitted
from .drivers._checks import projected_inf_norm

#: a problem whose gradient has the wrong length (checked at its start)
BAD_SHAPE = -2

#: problems from which :func:`minimize_many` runs them on numba's threads
#: (``parallel=None``): below it, starting the thread pool costs more than
#: it saves (measured with the decay fits of ``benchmarks/many_compare.py``)
PARALLEL_MIN_PROBLEMS = 32

#: what the per-problem result integers hold (columns of ``IO``)
_STATUS, _NIT, _NFEV, _NJEV = range(4)


# --------------------------------------------------------------------------
# Per-problem set-up: plain functions compiled with ``fg`` and the solver's
# bound loop (``loop``) as globals; the solver arithmetic is the loop's.


def _start(k, X, lb, ub, bounded, args, XO, GO, FO, IO):
    """``(x, g, f, ok)`` at problem ``k``'s start (``x0`` clipped into the bounds)."""
    n = X.shape[1]
    x = np.empty(n)
    for i in range(n):
        x[i] = X[k, i]
    if bounded:
        for i in range(n):
            if x[i] < lb[i]:
                x[i] = lb[i]
            elif x[i] > ub[i]:
                x[i] = ub[i]
    f0, g0 = fg(x.copy(), *args)  # noqa: F821 - bound per objective
    g = np.empty(n)
    f = float(f0)
    status = 0
    if g0.shape[0] != n:
        status = BAD_SHAPE
    else:
        for i in range(n):
            g[i] = g0[i]
        if not math.isfinite(f):
            status = _status.NONFINITE_F
        else:
            for i in range(n):
                if not math.isfinite(g[i]):
                    status = _status.NONFINITE_G
                    break
    if status != 0:
        for i in range(n):
            XO[k, i] = x[i]
            GO[k, i] = g[i] if status != BAD_SHAPE else math.nan
        FO[k] = f
        IO[k, _STATUS] = status
        IO[k, _NIT] = 0
        IO[k, _NFEV] = 1
        IO[k, _NJEV] = 1
    return x, g, f, status == 0


def _finish(k, x, g, f, status, nit, nfev, njev, XO, GO, FO, IO):
    for i in range(x.shape[0]):
        XO[k, i] = x[i]
        GO[k, i] = g[i]
    FO[k] = f
    IO[k, _STATUS] = status
    IO[k, _NIT] = nit
    IO[k, _NFEV] = nfev
    IO[k, _NJEV] = njev


def _lbfgs_one(k, X, lb, ub, bounded, args, XO, GO, FO, IO, P):
    """Problem ``k`` by :func:`fastopt.solvers.lbfgs._lbfgs_loop` (no bounds)."""
    maxiter, maxfev, gtol, ftol, maxls, c1, c2, maxcor, nsteps = P
    x, g, f, ok = _start(k, X, lb, ub, bounded, args, XO, GO, FO, IO)
    if not ok:
        return
    n = x.shape[0]
    m1 = maxcor + 1
    S = np.zeros((m1, n))
    Y = np.zeros((m1, n))
    rho = np.zeros(m1)
    alpha = np.zeros(m1)
    d = np.empty(n)
    xt = np.empty(n)
    ls = np.zeros(LS_SIZE)  # noqa: F821 - bound below
    fs = np.empty(2)
    fs[0] = f
    fs[1] = 0.0
    ns = np.zeros(6, dtype=np.int64)
    ns[1] = 1
    ns[2] = 1
    ns[5] = RUNNING  # noqa: F821
    status = loop(args, x, g, d, xt, S, Y, rho, alpha, ls, fs, ns,  # noqa: F821
                  nsteps, maxiter, maxfev, gtol, ftol, maxls, c1, c2)  # fmt: skip
    _finish(k, x, g, fs[0], status, ns[0], ns[1], ns[2], XO, GO, FO, IO)


def _lbfgsb_one(k, X, lb, ub, bounded, args, XO, GO, FO, IO, P):
    """Problem ``k`` by :func:`fastopt.solvers.lbfgs._lbfgsb_loop` (bounds)."""
    maxiter, maxfev, gtol, ftol, maxls, c1, c2, maxcor, boxed, nsteps = P
    x, g, f, ok = _start(k, X, lb, ub, bounded, args, XO, GO, FO, IO)
    if not ok:
        return
    n = x.shape[0]
    m = maxcor
    m2 = 2 * m
    fs = np.empty(2)
    fs[0] = f
    fs[1] = 1.0
    ns = np.zeros(5, dtype=np.int64)
    ns[1] = 1
    ns[2] = 1
    ns[4] = RUNNING  # noqa: F821
    status = loop(  # noqa: F821
        args, x, g, lb, ub,
        np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.empty(n),
        np.zeros((m, n)), np.zeros((m, n)), np.zeros((m, m)), np.zeros((m, m)),
        np.zeros((m2, m2)), np.zeros(m2, dtype=np.int64),
        np.zeros((m2, m2)), np.zeros(m2, dtype=np.int64),
        np.zeros(m2), np.zeros(m2), np.zeros(m2), np.zeros(m2), np.zeros(m2),
        np.zeros(n), np.zeros(n), np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64),
        np.zeros(LS_SIZE), fs, ns,  # noqa: F821
        nsteps, maxiter, maxfev, gtol, ftol, maxls, c1, c2, boxed,
    )  # fmt: skip
    _finish(k, x, g, fs[0], status, ns[0], ns[1], ns[2], XO, GO, FO, IO)


def _first_order_one(k, X, lb, ub, bounded, args, XO, GO, FO, IO, P):
    """Problem ``k`` by :func:`fastopt.drivers.first_order.deterministic_loop`."""
    # (every integer comes through P: a literal argument would be typed as a
    # literal, and the loop compiled again for it)
    maxiter, gtol, kid, S0, h, lrs, ncoef, zero, one, zero_steps = P
    x, g, f, ok = _start(k, X, lb, ub, bounded, args, XO, GO, FO, IO)
    n = x.shape[0]
    if not ok:
        for i in range(n):
            GO[k, i] = 0.0  # the first-order driver's g_good: nothing accepted
        return
    S = S0.copy()
    c = np.zeros(ncoef)
    x_good = x.copy()
    g_good = np.zeros(n)
    gnorm = 0.0
    for i in range(n):
        x_good[i] = x[i]
        g_good[i] = g[i]
        gnorm = max(gnorm, abs(g[i]))
    if bounded:  # as the first-order driver: the projected gradient's norm
        gnorm = projected_inf_norm(x, g, lb, ub)
    status, t, gnorm, f, f_prev, nfev = loop(  # noqa: F821
        x, args, kid, S, h, c, lrs, zero, x_good, g_good, lb, ub, bounded, zero_steps,
        zero, maxiter + one, maxiter, gtol, gnorm, f, math.nan, one,
    )  # fmt: skip
    _finish(k, x_good, g_good, f, status, t, nfev, nfev, XO, GO, FO, IO)


_OUTER = """
def many(X, lb, ub, bounded, XO, GO, FO, IO, P, {params}):
    for k in {range}(X.shape[0]):
        one(k, X, lb, ub, bounded, ({args}), XO, GO, FO, IO, P)
"""

_BUILT = {}


def _bind(fn, namespace):
    return types.FunctionType(fn.__code__, {**fn.__globals__, **namespace}, fn.__name__)


def _compile(kind, fg, loop, n_row, n_shared, parallel):
    """The compiled driver over problems for solver ``kind`` and ``fg`` (kept)."""
    key = (kind, fg, loop, n_row, n_shared, parallel)
    if key in _BUILT:
        return _BUILT[key]
    from .solvers import lbfgs
    from .solvers._run import RUNNING

    namespace = {"fg": fg, "loop": loop, "LS_SIZE": lbfgs._LS_SIZE, "RUNNING": RUNNING}
    jit = numba.njit(**_jit.USER)
    start = jit(_bind(_start, namespace))
    finish = jit(_finish)
    namespace.update({"_start": start, "_finish": finish})
    one = jit(_bind({"lbfgs": _lbfgs_one, "lbfgsb": _lbfgsb_one,
                     "first-order": _first_order_one}[kind], namespace))  # fmt: skip
    params = [f"r{i}" for i in range(n_row)] + [f"s{i}" for i in range(n_shared)]
    args = [f"r{i}[k]" for i in range(n_row)] + [f"s{i}" for i in range(n_shared)]
    src = _OUTER.format(params=", ".join(params) or "", range="prange" if parallel else "range",
                        args="".join(a + ", " for a in args))  # fmt: skip
    glb = {"one": one, "prange": numba.prange}
    exec(compile(src, f"<fastopt.minimize_many {kind}>", "exec"), glb)
    outer = numba.njit(parallel=parallel, **_jit.USER)(glb["many"])
    _BUILT[key] = outer
    return outer


def _as_X0(X0):
    X = np.asarray(X0)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X0 must be a 2-D array (K problems, n variables), got shape {X.shape}")
    if not (np.issubdtype(X.dtype, np.number) and not np.iscomplexobj(X)):
        raise ValueError(f"X0 must be real numbers, got dtype {X.dtype}")
    X = np.array(X, dtype=np.float64, order="C")
    if not np.all(np.isfinite(X)):
        k, i = np.argwhere(~np.isfinite(X))[0]
        raise ValueError(f"X0 must be finite; X0[{k}, {i}] = {X[k, i]}")
    return X


def _as_rows(args, K):
    if not isinstance(args, tuple):
        args = (args,)
    rows = []
    for j, a in enumerate(args):
        a = np.ascontiguousarray(a)
        if a.ndim == 0 or a.shape[0] != K:
            raise ValueError(
                f"args[{j}] must have one row per problem ({K}), got shape {a.shape}; "
                "pass arrays every problem shares in shared_args"
            )
        rows.append(a)
    return tuple(rows)


def _fg_of(fun, jac):
    # the glue minimize compiles around the same functions (fastopt._user):
    # each problem runs exactly what minimize runs on it alone
    from ._user import _glue

    if not is_jitted(fun):
        raise TypeError("minimize_many needs an @njit fun (numba.njit); got a Python callable")
    if jac is True:
        return _glue("fg_true", fun)
    if is_jitted(jac):
        return _glue("fg", fun, jac)
    raise TypeError("minimize_many needs jac=True (fun returns (f, g)) or an @njit jac, "
                    f"got jac={jac!r}")  # fmt: skip


def minimize_many(fun, X0, args=(), shared_args=(), jac=True, method="lbfgs", bounds=None,
                  tol=None, options=None, parallel=None):  # fmt: skip
    r"""Minimize K independent problems of the same form in one compiled call.

    Problem :math:`k` is :math:`\min_x f(x;\, a_k, s)`, started at
    ``X0[k]``: ``fun(x, *row_args, *shared_args)`` with ``row_args`` the
    ``k``-th rows of ``args``.  Each problem has its own solver state and its
    own stop, and its result is the one :func:`fastopt.minimize` gives on
    that problem alone (same iterates, same counts).

    Parameters
    ----------
    fun : numba dispatcher
        ``@njit`` objective of one problem: ``fun(x, *row_args,
        *shared_args)`` returning ``(f, g)`` with ``jac=True``, else ``f``.
    X0 : array_like, shape (K, n)
        The starts, one row per problem (computed in float64).
    args : tuple of arrays, optional
        Per-problem data: each array has K rows, row ``k`` goes to problem
        ``k`` (a 2-D array gives each problem a 1-D row, a 1-D array a
        scalar).
    shared_args : tuple, optional
        Passed to every problem unchanged.
    jac : True or numba dispatcher
        True when ``fun`` returns ``(f, g)``; else an ``@njit`` gradient
        ``jac(x, *row_args, *shared_args)``.
    method : str
        ``"lbfgs"`` (default; L-BFGS-B with ``bounds``) or a first-order rule
        of :data:`fastopt.METHODS` (full batch, ``schedule`` allowed).
        ``scg``, ``hessian-free`` and ``adahessian`` are not available here
        yet (ValueError).
    bounds : sequence of (min, max) pairs or `scipy.optimize.Bounds`, optional
        The same box for every problem.
    tol : float, optional
        As in :func:`fastopt.minimize` (``lbfgs``: ``gtol`` and ``ftol``).
    options : dict, optional
        The method's options and ``maxiter``, ``gtol``, as in
        :func:`fastopt.minimize` (no callback, ``return_all`` or minibatches).
    parallel : bool or None
        Run the problems on numba's threads (``numba.set_num_threads``);
        None: when there are at least :data:`PARALLEL_MIN_PROBLEMS` problems
        and more than one thread.  The results do not depend on it.

    Returns
    -------
    res : scipy.optimize.OptimizeResult
        Fields are arrays over problems: ``x`` and ``jac`` (K, n); ``fun``,
        ``success``, ``status``, ``nit``, ``nfev``, ``njev`` (K,); ``message``
        a list of K strings.  A problem whose value or gradient turns NaN or
        inf (bad data in its row, say) fails alone, with its own status, at
        its last finite iterate.

    Notes
    -----
    The first call for a given ``fun`` compiles the driver (about a second or
    two; the solver loop is cached where ``fun`` is ``@njit(cache=True)``).

    Examples
    --------
    >>> import numba, numpy as np, fastopt
    >>> @numba.njit
    ... def fg(x, y, t):  # x, then the row arguments, then the shared ones
    ...     r = x[0] * np.exp(-x[1] * t) - y
    ...     e = np.exp(-x[1] * t)
    ...     g = np.array([2 * np.sum(r * e), -2 * np.sum(r * x[0] * t * e)])
    ...     return np.sum(r * r), g
    >>> t = np.linspace(0, 4, 20)
    >>> true = np.array([[1.0, 0.5], [2.0, 1.5], [0.5, 1.0]])
    >>> Y = true[:, :1] * np.exp(-true[:, 1:] * t)
    >>> res = fastopt.minimize_many(fg, np.ones((3, 2)), args=(Y,), shared_args=(t,),
    ...                             bounds=[(0, None), (0, 10)], tol=1e-12)
    >>> bool(res.success.all()), np.round(res.x, 6).tolist()
    (True, [[1.0, 0.5], [2.0, 1.5], [0.5, 1.0]])
    """
    from scipy.optimize import OptimizeResult, OptimizeWarning

    entry = get_method(method)
    X = _as_X0(X0)
    K, n = X.shape
    rows = _as_rows(args, K)
    if not isinstance(shared_args, tuple):
        shared_args = (shared_args,)
    fg = _fg_of(fun, jac)
    opts = dict(options or {})
    if tol is not None:
        for name in entry.tol_options:
            opts.setdefault(name, tol)
    common = {k: opts.pop(k, v) for k, v in COMMON.items()}
    for k in ("batch_size", "epochs", "return_all", "device"):
        if common[k] not in (None, False):
            raise ValueError(f"option {k!r} is not available in minimize_many")
    maxiter = entry.default_maxiter if common["maxiter"] is None else common["maxiter"]
    if maxiter == np.inf:
        maxiter = 2**62
    if not (isinstance(maxiter, int | np.integer | float) and maxiter >= 0):
        raise ValueError(f"Invalid maxiter value: {maxiter!r}")
    maxiter = int(maxiter)
    gtol = float(common["gtol"])
    if not gtol >= 0:
        raise ValueError(f"Invalid gtol value: {common['gtol']!r}")
    method_opts, unknown = entry.options(opts)
    if unknown:
        warnings.warn(f"Unknown solver options for {entry.name!r}: {', '.join(unknown)}",
                      OptimizeWarning, stacklevel=2)  # fmt: skip
    lb, ub = as_bounds(bounds, np.zeros(n))
    bounded = lb is not None
    if not bounded:
        lb = ub = np.zeros(n)
    lb = np.ascontiguousarray(lb, dtype=np.float64)
    ub = np.ascontiguousarray(ub, dtype=np.float64)

    # the first problem's evaluation from Python: clear errors for bad types
    from ._validation import check_fg_pair, check_grad, check_value

    # (the user's own functions: the compiled glue's errors are terser)
    x_chk = np.clip(X[0], lb, ub) if bounded else X[0].copy()
    first_args = (*(r[0] for r in rows), *shared_args)
    if jac is True:
        out0 = check_fg_pair(fun(x_chk.copy(), *first_args), "fun(X0[0])")
        check_value(out0[0], "fun(X0[0])")
        check_grad(out0[1], x_chk, "fun(X0[0])[1] (jac=True)")
    else:
        check_value(fun(x_chk.copy(), *first_args), "fun(X0[0])")
        check_grad(jac(x_chk.copy(), *first_args), x_chk, "jac(X0[0])")

    kind, loop, P = _plan(entry, method_opts, fg, maxiter, gtol, lb, ub, bounded, n)
    if parallel is None:
        parallel = K >= PARALLEL_MIN_PROBLEMS and numba.get_num_threads() > 1
    driver = _compile(kind, fg, loop, len(rows), len(shared_args), bool(parallel))
    XO = np.empty((K, n))
    GO = np.empty((K, n))
    FO = np.empty(K)
    IO = np.zeros((K, 4), dtype=np.int64)
    driver(X, lb, ub, bounded, XO, GO, FO, IO, P, *rows, *shared_args)

    status = IO[:, _STATUS].copy()
    messages = {**_status.MESSAGES, BAD_SHAPE: f"jac returned an array whose shape is not ({n},)."}
    return OptimizeResult(
        x=XO, fun=FO, jac=GO, status=status,
        success=np.isin(status, list(_status.SUCCESSFUL)),
        nit=IO[:, _NIT].copy(), nfev=IO[:, _NFEV].copy(), njev=IO[:, _NJEV].copy(),
        message=[messages.get(int(s), f"status {int(s)}") for s in status],
    )  # fmt: skip


def _plan(entry, opts, fg, maxiter, gtol, lb, ub, bounded, n):
    """``(kind, loop, P)``: which per-problem solver, its bound loop and scalar options."""
    if entry.kind == "first-order":
        from .drivers import first_order as fo
        from .kernels import cpu

        if opts._lr_of is not None:
            lrs = np.array([opts._lr_of(k, opts.base_lr) for k in range(maxiter + 1)])
        else:
            lrs = np.array([opts.base_lr])
        (loop, first), _ = fo.compiled_loops(opts.kid, fg)
        if first:
            raise RuntimeError("minimize_many needs fastopt's sources (a frozen install?)")
        S0 = opts.init(np.zeros(n)).slots
        P = (maxiter, gtol, opts.kid, S0, opts.h, lrs, cpu.N_COEFFS, 0, 1, opts.zero_steps)
        return "first-order", loop, P
    if entry.name != "lbfgs":
        raise ValueError(f"minimize_many does not run method {entry.name!r} yet; use 'lbfgs' "
                         "(L-BFGS-B with bounds) or a first-order method")  # fmt: skip
    from .solvers import lbfgs
    from .solvers._run import ALL_STEPS

    maxfev = lbfgs._max_evaluations(opts)
    common = (maxiter, maxfev, gtol, float(opts.ftol), int(opts.maxls))
    finite = bounded and (np.isfinite(lb).any() or np.isfinite(ub).any())
    if finite:
        loop, first = lbfgs._BLOOP.bind(fg)
        boxed = bool(np.isfinite(lb).all() and np.isfinite(ub).all())
        P = (*common, lbfgs._c1(opts, True), float(opts.c2), int(opts.maxcor), boxed, ALL_STEPS)
        kind = "lbfgsb"
    else:
        loop, first = lbfgs._LOOP.bind(fg)
        P = (*common, lbfgs._c1(opts, False), float(opts.c2), int(opts.maxcor), ALL_STEPS)
        kind = "lbfgs"
    if first:
        raise RuntimeError("minimize_many needs fastopt's sources (a frozen install?)")
    return kind, loop, P
