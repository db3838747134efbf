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
from typing import NamedTuple

import numba
import numpy as np

from . import _jit, _status
from ._methods import COMMON, get_method
from ._user import as_scalar
from ._validation import as_bounds, is_jitted
from .drivers._checks import projected_inf_norm
from .solvers._lbfgsb import I_ROWS, M2_ROWS, V_ROWS, V_XT
from .solvers._vectors import dot

#: a problem whose gradient has the wrong length (checked at its start, and
#: by the L-BFGS loops at every evaluation; other methods' glue raises)
BAD_SHAPE = _status.GRADIENT_SHAPE

#: problems from which :func:`minimize_many` runs them on numba's threads
#: (``parallel=None``): below it, starting the thread pool costs more than
#: it saves (measured with the decay fits of ``benchmarks/many_compare.py``)
PARALLEL_MIN_PROBLEMS = 32

#: what the per-problem result integers hold (columns of ``IO``)
_STATUS, _NIT, _NFEV, _NJEV, _NHEV = range(5)


# --------------------------------------------------------------------------
# Per-problem set-up: plain functions compiled with ``fg`` and the solver's
# bound loop (``loop``) as globals; the solver arithmetic is the loop's.  Each
# sets up what the solver's ``run`` sets up for ``minimize`` (same values,
# same kernels), so the loop takes the same iterates.  Every integer and flag
# comes through ``P``: a literal argument would be typed as a literal, and
# the loop compiled again for it.


def _start_into(k, X, lb, ub, bounded, args, XO, GO, FO, IO, x, g, xc):
    """``(f, ok)`` at problem ``k``'s start, ``x0`` (clipped into the bounds) in ``x``, its
    gradient in ``g``; the user's function gets a copy of ``x`` in ``xc`` (n each)."""
    n = X.shape[1]
    for i in range(n):
        x[i] = X[k, i]
    if bounded:
        for i in range(n):
            if x[i] < lb[i]:
                x[i] = lb[i]
            elif x[i] > ub[i]:
                x[i] = ub[i]
    for i in range(n):
        xc[i] = x[i]
    f0, g0 = fg(xc, *args)  # noqa: F821 - bound per objective
    f = as_scalar(f0)
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
        IO[k, _NHEV] = 0
    return f, status == 0


def _start(k, X, lb, ub, bounded, args, XO, GO, FO, IO):
    """``(x, g, f, ok)`` at problem ``k``'s start (:func:`_start_into`, new arrays)."""
    n = X.shape[1]
    x = np.empty(n)
    g = np.empty(n)
    f, ok = _start_into(k, X, lb, ub, bounded, args, XO, GO, FO, IO, x, g, np.empty(n))
    return x, g, f, ok


def _finish(k, x, g, f, status, nit, nfev, njev, nhev, XO, GO, FO, IO):
    for i in range(x.shape[0]):
        XO[k, i] = x[i]
        GO[k, i] = g[i]
    FO[k] = f
    IO[k, _STATUS] = status
    IO[k, _NIT] = nit
    IO[k, _NFEV] = nfev
    IO[k, _NJEV] = njev
    IO[k, _NHEV] = nhev


def _lbfgs_one(k, X, lb, ub, bk, bounded, args, XO, GO, FO, IO, P, W):
    """Problem ``k`` by :func:`fastopt.solvers.lbfgs._lbfgs_loop` (no finite bound)."""
    maxiter, maxfev, gtol, ftol, maxls, c1, c1b, c2, maxcor, nsteps = P
    x, g, f, ok = _start(k, X, lb, ub, bounded, args, XO, GO, FO, IO)
    if not ok:
        return
    S, Y, rho, alpha, d, xt, gt, ls = W
    S[:] = 0.0
    Y[:] = 0.0
    fs = np.empty(2)
    fs[0] = f
    fs[1] = 0.0
    ns = np.zeros(6, dtype=np.int64)
    ns[1] = 1
    ns[2] = 1
    ns[5] = RUNNING  # noqa: F821
    status = loop(args, x, g, d, xt, gt, S, Y, rho, alpha, ls, fs, ns,  # noqa: F821
                  nsteps, maxiter, maxfev, gtol, ftol, maxls, c1, c2)  # fmt: skip
    _finish(k, x, g, fs[0], status, ns[0], ns[1], ns[2], 0, XO, GO, FO, IO)


def _scg_one(k, X, lb, ub, bk, bounded, args, XO, GO, FO, IO, P, W):
    """Problem ``k`` by :func:`fastopt.solvers.scg._scg_loop`."""
    maxiter, maxfev, gtol, ftol, xtol, sigma0, netlab, powell, gfev, lam, nsteps = P
    x, g, f, ok = _start(k, X, lb, ub, bounded, args, XO, GO, FO, IO)
    if not ok:
        return
    n = x.shape[0]
    p = np.empty(n)
    for i in range(n):
        p[i] = -g[i]
    fs = np.zeros(6)
    fs[0] = f
    fs[1] = lam
    fs[5] = dot(p, p)
    ns = np.zeros(8, dtype=np.int64)
    ns[1] = 1
    ns[2] = 1
    ns[6] = 1
    ns[7] = RUNNING  # noqa: F821
    status = loop(  # noqa: F821
        args, x, g, p, np.empty(n), fs, ns,
        nsteps, maxiter, maxfev, gtol, ftol, xtol, sigma0, netlab, powell, gfev,
    )  # fmt: skip
    _finish(k, x, g, fs[0], status, ns[0], ns[1], ns[2], ns[3], XO, GO, FO, IO)


def _hf_one(k, X, lb, ub, bk, bounded, args, XO, GO, FO, IO, P, W):
    """Problem ``k`` by :func:`fastopt.solvers.hessian_free._hf_loop` (full data)."""
    (maxiter, n_updates, gtol, cg_maxiter, cg_tol, decay, precond, one, shuffle, unit,
     gfev, lam0, lam_min, lam_max, fd_step, save_at, nsteps) = P  # fmt: skip
    x, g, f, ok = _start(k, X, lb, ub, bounded, args, XO, GO, FO, IO)
    if not ok:
        return
    n = x.shape[0]
    nsave = save_at.shape[0] + 1
    fs = np.empty(5)
    fs[0] = f
    fs[1] = lam0
    fs[2] = lam_min
    fs[3] = lam_max
    fs[4] = fd_step
    ns = np.zeros(8, dtype=np.int64)
    ns[1] = 1
    ns[2] = 1
    status, x2, g2, _ = loop(  # noqa: F821
        args, x, g, np.zeros(n), np.zeros(one, dtype=np.int64),
        np.zeros((nsave, n)), np.zeros(nsave), np.zeros(cg_maxiter + 1), save_at, None, None,
        np.zeros(2, dtype=np.uint64), fs, ns,
        nsteps, maxiter, n_updates, gtol, cg_maxiter, cg_tol, decay, precond,
        one, shuffle, one, unit, unit, gfev,
    )  # fmt: skip
    _finish(k, x2, g2, fs[0], status, ns[0], ns[1], ns[2], ns[3], XO, GO, FO, IO)


def _ada_one(k, X, lb, ub, bk, bounded, args, XO, GO, FO, IO, P, W):
    """Problem ``k`` by :func:`fastopt.solvers.adahessian._ada_loop` (full data)."""
    (maxiter, n_updates, gtol, one, shuffle, lr, b1, b2, eps, power, update_every,
     equilibration, gfev, fd_step, zstate, nsteps) = P  # fmt: skip
    x, g, f, ok = _start(k, X, lb, ub, bounded, args, XO, GO, FO, IO)
    if not ok:
        return
    n = x.shape[0]
    rng = np.zeros(2, dtype=np.uint64)
    rng[1] = zstate
    fs = np.empty(5)
    fs[0] = f
    fs[1] = 1.0
    fs[2] = 1.0
    fs[3] = f
    fs[4] = max(abs(f), 1.0)
    ns = np.zeros(6, dtype=np.int64)
    ns[1] = 1
    ns[2] = 1
    status, g2 = loop(  # noqa: F821
        args, x, g, np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n), x.copy(), x.copy(),
        g.copy(), lb, ub, None, rng, fs, ns,
        nsteps, maxiter, n_updates, gtol, one, shuffle,
        lr, b1, b2, eps, power, update_every, equilibration, gfev, fd_step,
    )  # fmt: skip
    _finish(k, x, g2, fs[0], status, ns[0], ns[1], ns[2], ns[3], XO, GO, FO, IO)


def _first_order_one(k, X, lb, ub, bk, bounded, args, XO, GO, FO, IO, P, W):
    """Problem ``k`` by :func:`fastopt.drivers.first_order.deterministic_loop`."""
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
    _finish(k, x_good, g_good, f, status, t, nfev, nfev, 0, XO, GO, FO, IO)


def _work_lbfgs(n, P):
    """L-BFGS's memory and work arrays (shapes as :func:`fastopt.solvers.lbfgs.run`'s)."""
    m1 = P[8] + 1
    return (np.zeros((m1, n)), np.zeros((m1, n)), np.zeros(m1), np.zeros(m1),
            np.empty(n), np.empty(n), np.empty(n), np.zeros(LS_SIZE))  # noqa: F821 # fmt: skip


def _work_lbfgsb(n, P):
    """L-BFGS-B's (:func:`fastopt.solvers.lbfgs.bounded_state`'s ``work``, ``fs``, ``ns``).

    The bundles of :func:`fastopt.solvers._lbfgsb.work_arrays` (written out:
    this is compiled), the line search's state, ``fs``, ``ns``, then a
    problem's ``x`` and ``g`` (copied out at its end).
    """
    m = P[8]
    m2 = 2 * m
    return (
        np.zeros((V_ROWS, n)), np.zeros((I_ROWS, n), dtype=np.int64),
        np.zeros((2, m, n)), np.zeros((2, m, m)), np.zeros((2, m2, m2)),
        np.zeros((M2_ROWS, m2)),
        np.zeros(LS_SIZE), np.zeros(2), np.zeros(5, dtype=np.int64),  # noqa: F821 # ls fs ns
        np.empty(n), np.empty(n),  # x, g (a problem's, copied out at its end)
    )  # fmt: skip


def _work_none(n, P):
    return np.empty(0)


def _work_chunked(n, P):
    """:data:`_CHUNK_LBFGSB`'s ``W``: L-BFGS-B's arrays (and L-BFGS's, for ``"lbfgs-mixed"``)."""
    return (_work_lbfgsb(n, P), _work_lbfgs(n, P)) if MIXED else (_work_lbfgsb(n, P),)  # noqa: F821


#: work arrays a driver allocates once per chunk of problems and each problem
#: reuses (allocating them per problem was about 1 us of a 25 us decay fit)
_WORK = {"lbfgs": _work_lbfgs, "lbfgsb": _work_chunked, "lbfgs-mixed": _work_chunked}


#: per-problem set-up by kind (the plans below say which)
_ONE = {
    "lbfgs": _lbfgs_one,
    "scg": _scg_one,
    "hessian-free": _hf_one,
    "adahessian": _ada_one,
    "first-order": _first_order_one,
}


_OUTER = """
def many(X, LB, UB, BK, bounded, XO, GO, FO, IO, P, nchunks, {params}):
    K = X.shape[0]
    rs = min(LB.shape[0] - 1, 1)  # 0: shared bounds, 1: a row per problem
    for c in {range}(nchunks):
        W = work(X.shape[1], P)
        for k in range(c * K // nchunks, (c + 1) * K // nchunks):
            kb = k * rs
            one(k, X, LB[kb], UB[kb], BK[kb], bounded, ({args}), XO, GO, FO, IO, P, W)
"""

#: L-BFGS-B's problems of one chunk, its per-problem set-up written into it
#: (``"lbfgsb"``; ``"lbfgs-mixed"`` adds the ``{unbounded}`` lines, which run
#: a problem without a finite bound by L-BFGS).  Compiled without reference
#: counting (:func:`fastopt._jit.borrowing_kernel`; the bounded loop too, see
#: :func:`fastopt.solvers.lbfgs._evaluate`): it holds no array of its own, the
#: driver over chunks (:data:`_OUTER_CHUNKS`) holds the work arrays, and the calls
#: that meet arrays of the user's function (the start, L-BFGS) are functions
#: of their own.  With counting, numba counted the work arrays and the
#: problem's rows in and out for every problem (about 80 atomic operations,
#: a sixth of a bounded 3-variable fit's time, in the driver and the loop).
#: The chunk's arrays are as its last problem left them: the loop reads only
#: what it wrote in its run (as minimize's reuse of a finished run's arrays,
#: lbfgs._WORK_POOL); only the state is set.  x and g too (the result is copied
#: out by _finish), and the start's copy of x for the user's function goes to
#: xt, which the loop writes before it reads: no allocation per problem (three
#: were a tenth of a problem's set-up).
_CHUNK_LBFGSB = """
def chunk(k0, k1, X, LB, UB, BK, bounded, XO, GO, FO, IO, P, W, {params}):
    rs = min(LB.shape[0] - 1, 1)  # 0: shared bounds, 1: a row per problem
    maxiter, maxfev, gtol, ftol, maxls, c1u, c1, c2, maxcor, nsteps = P
    V, I, PS, MM, KK, M2, ls, fs, ns, x, g = W[0]
    xt = V[V_XT]
    for k in range(k0, k1):
        kb = k * rs
        args = ({args})
        {unbounded}
        lb = LB[kb]
        ub = UB[kb]
        f, ok = start_into(k, X, lb, ub, bounded, args, XO, GO, FO, IO, x, g, xt)
        if not ok:
            continue
        fs[0] = f
        fs[1] = 1.0
        ns[0] = 0
        ns[1] = 1
        ns[2] = 1
        ns[3] = 0
        ns[4] = RUNNING
        status = loop(
            args, x, g, lb, ub, V, I, PS, MM, KK, M2, ls, fs, ns,
            nsteps, maxiter, maxfev, gtol, ftol, maxls, c1, c2, BK[kb] == 2,
        )
        _finish(k, x, g, fs[0], status, ns[0], ns[1], ns[2], 0, XO, GO, FO, IO)
"""

#: ``"lbfgs-mixed"``'s lines in :data:`_CHUNK_LBFGSB`
_MIXED_PROBLEM = """if BK[kb] == 0:
            one_u(k, X, LB[kb], UB[kb], BK[kb], bounded, args, XO, GO, FO, IO, P, W[1])
            continue"""

#: the driver over chunks for a kind with a :data:`_CHUNK_LBFGSB`-like chunk
_OUTER_CHUNKS = """
def many(X, LB, UB, BK, bounded, XO, GO, FO, IO, P, nchunks, {params}):
    K = X.shape[0]
    for c in {range}(nchunks):
        chunk(c * K // nchunks, (c + 1) * K // nchunks, X, LB, UB, BK, bounded, XO, GO, FO, IO,
              P, work(X.shape[1], P), {params})
"""

_BUILT = {}


def _bind(fn, namespace):
    return types.FunctionType(fn.__code__, {**fn.__globals__, **namespace}, fn.__name__)


def _serial_chunk(chunk, mixed, ls_size):
    """The serial driver of a chunked kind: ``chunk`` called from Python on all
    the problems, with work arrays made by NumPy here.

    Not a compiled driver around the chunk: numba links the code of what a
    function calls into it and LLVM optimises it again, so a compiled driver
    optimised the solver loop (and the kernels linked into it) a second time
    (bounded decay fits: the first call in a process with the loop cached,
    3.6 s of CPU with the per-problem code inlined into the driver, 5.1 s with
    a driver around the chunk, 3.6 s without).
    """
    ns = {"LS_SIZE": ls_size}
    work = _bind(_work_chunked, {"MIXED": mixed, "_work_lbfgsb": _bind(_work_lbfgsb, ns),
                                 "_work_lbfgs": _bind(_work_lbfgs, ns)})  # fmt: skip

    def serial(X, LB, UB, BK, bounded, XO, GO, FO, IO, P, nchunks, *rest):
        chunk(0, X.shape[0], X, LB, UB, BK, bounded, XO, GO, FO, IO, P, work(X.shape[1], P), *rest)

    return serial


def _compile(kind, fg, loops, n_row, n_shared, parallel):
    """The compiled driver over problems for solver ``kind`` and ``fg`` (kept).

    ``loops``: the solver's loop bound to the user's functions (``{"loop":
    ...}``), or, for ``"lbfgs-mixed"`` (some problems bounded, some not),
    L-BFGS's and L-BFGS-B's (``loop_u``, ``loop_b``).
    """
    key = (kind, fg, tuple(sorted(loops.items())), n_row, n_shared, parallel)
    if key in _BUILT:
        return _BUILT[key]
    from .solvers import lbfgs
    from .solvers._run import RUNNING

    # L-BFGS's loops call the user's function itself (lbfgs._unchecked), and so
    # does their start: _start_into checks the gradient's length (no glue call)
    user_fg = lbfgs._unchecked(fg) if kind.startswith("lbfgs") else fg
    namespace = {"fg": user_fg, "LS_SIZE": lbfgs._LS_SIZE, "RUNNING": RUNNING, "dot": dot}
    # The per-problem functions are inlined into the driver (numba IR): compiled
    # as separate functions, LLVM optimised the solver loop linked into each
    # of them again (bounded decay fits: 7.3 s of CPU for a first call, 4.2 s
    # inlined)
    jit = numba.njit(**_jit.USER, inline="always")
    namespace["_start_into"] = jit(_bind(_start_into, namespace))
    namespace.update({"_start": jit(_bind(_start, namespace)), "_finish": jit(_finish)})
    # ... but not into a prange body: numba's parfor passes then work through
    # the whole inlined per-problem code (bounded decay fits: the parallel
    # driver's first call 12.7 s of CPU with it, 10.3 s with one call per
    # problem and per chunk's work arrays)
    entry = numba.njit(**_jit.USER) if parallel else jit
    params = [f"r{i}" for i in range(n_row)] + [f"s{i}" for i in range(n_shared)]
    args = [f"r{i}[k]" for i in range(n_row)] + [f"s{i}" for i in range(n_shared)]
    fields = {"params": ", ".join(params) or "", "range": "prange" if parallel else "range",
              "args": "".join(a + ", " for a in args)}  # fmt: skip
    mixed = kind == "lbfgs-mixed"
    if kind in ("lbfgsb", "lbfgs-mixed"):
        namespace.update(
            {
                name: jit(_bind(fn, namespace))
                for name, fn in (("_work_lbfgs", _work_lbfgs), ("_work_lbfgsb", _work_lbfgsb))
            }
        )
        namespace["MIXED"] = mixed
    glb = {"prange": numba.prange, "work": entry(_bind(_WORK.get(kind, _work_none), namespace))}
    if kind in ("lbfgsb", "lbfgs-mixed"):
        # _nrt explicit: numba compiles a callee that sets no flag with its
        # caller's, and these are called from the chunk, which counts none
        counting = numba.njit(**_jit.USER, _nrt=True)
        # the start calls the user's function: not inlined into the chunk,
        # which counts no references
        start = counting(_bind(_start_into, namespace))
        cglb = {"RUNNING": RUNNING, "V_XT": V_XT, "_finish": namespace["_finish"],
                "loop": loops["loop_b" if mixed else "loop"], "start_into": start}  # fmt: skip
        if mixed:
            cglb["one_u"] = counting(_bind(_lbfgs_one, {**namespace, "loop": loops["loop_u"]}))
        csrc = _CHUNK_LBFGSB.format(**fields, unbounded=_MIXED_PROBLEM if mixed else "")
        exec(compile(csrc, f"<fastopt.minimize_many {kind} chunk>", "exec"), cglb)
        glb["chunk"] = numba.njit(**_jit.USER, _nrt=False)(cglb["chunk"])
        if not parallel:
            _BUILT[key] = _serial_chunk(glb["chunk"], mixed, lbfgs._LS_SIZE)
            return _BUILT[key]
        src = _OUTER_CHUNKS.format(**fields)
    else:
        src = _OUTER.format(**fields)
        glb["one"] = entry(_bind(_ONE[kind], {**namespace, "loop": loops["loop"]}))
    exec(compile(src, f"<fastopt.minimize_many {kind}>", "exec"), glb)
    outer = numba.njit(parallel=parallel, **_jit.USER)(glb["many"])
    _BUILT[key] = outer
    return outer


def _as_X0(X0):
    X = np.asarray(X0)
    if X.ndim != 2:
        raise ValueError(f"X0 must be a 2-D array (K problems, n variables), got shape {X.shape}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X0 must hold at least one problem (row) and one variable (column), "
                         f"got shape {X.shape}")  # fmt: skip
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


def _functions(fun, jac, x, args):
    """``(fun_only, fg, grad, grad_calls_fun)``: the glue :func:`fastopt.minimize` builds.

    The same compiled glue around the same functions (:mod:`fastopt._user`),
    so each problem runs exactly what ``minimize`` runs on it alone.  The
    user's functions are first called at ``x`` from Python (clear errors for
    bad return types; the compiled glue's are terser).
    """
    from ._user import compiled_functions

    if not is_jitted(fun):
        raise TypeError("minimize_many needs an @njit fun (numba.njit); got a Python callable")
    if not (jac is True or is_jitted(jac)):
        raise TypeError("minimize_many needs jac=True (fun returns (f, g)) or an @njit jac, "
                        f"got jac={jac!r}")  # fmt: skip
    return compiled_functions(fun, jac, x, args)[:4]


def _per_problem_bounds(bounds, K, n):
    """``(LB, UB)`` of shape (K, n) from per-problem bounds, or None for shared ones.

    Per-problem: an array of shape (K, n, 2) (``[..., 0]`` the lower bounds,
    ``[..., 1]`` the upper ones), or `scipy.optimize.Bounds` whose ``lb`` or
    ``ub`` is 2-D (broadcast to (K, n)); ``-inf``/``inf`` for a free side.
    """
    from scipy.optimize import Bounds

    if isinstance(bounds, Bounds):
        lb, ub = np.asarray(bounds.lb, dtype=float), np.asarray(bounds.ub, dtype=float)
        if lb.ndim < 2 and ub.ndim < 2:
            return None
        try:
            return np.broadcast_to(lb, (K, n)), np.broadcast_to(ub, (K, n))
        except ValueError:
            raise ValueError(
                f"bounds: Bounds.lb and Bounds.ub must broadcast to ({K}, {n}) "
                f"(K problems, n variables); got {lb.shape} and {ub.shape}"
            ) from None
    if not isinstance(bounds, np.ndarray):
        try:  # nested lists of shape (K, n, 2) too (None becomes NaN: refused below)
            arr = np.asarray(bounds, dtype=float)
        except (TypeError, ValueError):
            return None
        if arr.ndim != 3:
            return None  # a sequence of pairs, shared (as_bounds checks it)
        bounds = arr
    if bounds.ndim != 3:
        return None
    if bounds.shape != (K, n, 2):
        raise ValueError(
            f"bounds: a per-problem bounds array must have shape ({K}, {n}, 2) "
            f"(K problems, n variables, (min, max)); got {bounds.shape}"
        )
    if not np.issubdtype(bounds.dtype, np.number):
        raise ValueError(
            f"bounds: a per-problem bounds array must hold numbers (-inf/inf for "
            f"no bound); got dtype {bounds.dtype}"
        )
    return bounds[..., 0].astype(float), bounds[..., 1].astype(float)


def _as_bounds(bounds, K, n):
    """``(LB, UB, BK, bounded)``: the bounds as (1, n) or (K, n) arrays (``-inf``/``inf``
    where free), each row's kind (0 no finite side, 1 some, 2 every side finite) and
    whether any side is finite."""
    rows = None if bounds is None else _per_problem_bounds(bounds, K, n)
    if rows is None:
        lb, ub = as_bounds(bounds, np.zeros(n))
        if lb is None:
            lb, ub = np.full(n, -np.inf), np.full(n, np.inf)
        LB, UB = lb[None, :], ub[None, :]
    else:
        LB, UB = rows
        for name, side in (("lower", LB), ("upper", UB)):
            if np.isnan(side).any():
                k, i = np.argwhere(np.isnan(side))[0]
                raise ValueError(f"bounds: {name} bound of problem {k} at index {i} is NaN "
                                 "(per-problem bounds take -inf/inf for no bound)")  # fmt: skip
        if (LB > UB).any():
            k, i = np.argwhere(LB > UB)[0]
            raise ValueError(f"bounds: problem {k}'s lower bound {LB[k, i]} > upper bound "
                             f"{UB[k, i]} at index {i}")  # fmt: skip
        for name, side, sign in (("lower", LB, np.inf), ("upper", UB, -np.inf)):
            if (side == sign).any():
                k, i = np.argwhere(side == sign)[0]
                raise ValueError(f"bounds: {name} bound of problem {k} at index {i} is "
                                 f"{side[k, i]} (no finite x satisfies it)")  # fmt: skip
    LB = np.ascontiguousarray(LB, dtype=np.float64)
    UB = np.ascontiguousarray(UB, dtype=np.float64)
    lo, hi = np.isfinite(LB), np.isfinite(UB)
    BK = np.where((lo & hi).all(axis=1), 2, np.where((lo | hi).any(axis=1), 1, 0))
    return LB, UB, BK.astype(np.int64), bool(BK.any())


def minimize_many(fun, X0, args=(), shared_args=(), jac=True, method="lbfgs", hessp=None,
                  bounds=None, tol=None, options=None, parallel=None):  # fmt: skip
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
        Any method of :data:`fastopt.METHODS`: ``"lbfgs"`` (default; L-BFGS-B
        with ``bounds``), ``"scg"``, ``"hessian-free"``, ``"adahessian"`` or a
        first-order rule (full batch, ``schedule`` allowed).
    hessp : numba dispatcher, optional
        ``@njit`` ``hessp(x, v, *row_args, *shared_args)``, Hessian times
        ``v``, for ``scg``, ``hessian-free`` and ``adahessian`` (else finite
        differences of the gradient, as in :func:`fastopt.minimize`).
    bounds : optional
        The same box for every problem: a sequence of ``(min, max)`` pairs
        (None: unbounded) or `scipy.optimize.Bounds` with 1-D ``lb``, ``ub``.
        Or a box per problem: an array of shape ``(K, n, 2)``
        (``bounds[k, i] = (min, max)``, ``-inf``/``inf`` for a free side) or
        `scipy.optimize.Bounds` whose ``lb``/``ub`` have shape ``(K, n)``
        (or broadcast to it).  ``lbfgs`` (L-BFGS-B), ``adahessian`` and the
        first-order rules take bounds.
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
        ``success``, ``status``, ``nit``, ``nfev``, ``njev``, ``nhev`` (K,);
        ``message`` a list of K strings.  ``nhev`` counts the products the
        solver made: ``minimize``'s also counts one more, its check of
        ``hessp`` before the loop (here ``hessp`` is checked once, on the
        first problem).  A problem whose value or gradient turns NaN or
        inf (bad data in its row, say) fails alone, with its own status, at
        its last finite iterate.

    Notes
    -----
    The first call for a given ``fun`` compiles the driver over problems
    (bounded decay fits: about 3 s of CPU serial, 9 s more for the parallel
    driver); the solver loop is cached where ``fun`` is ``@njit(cache=True)``.

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
    if hessp is not None and not entry.uses_hessp:
        warnings.warn(f"Method {entry.name} does not use Hessian information (hessp).",
                      RuntimeWarning, stacklevel=2)  # fmt: skip
        hessp = None
    if hessp is not None and not is_jitted(hessp):
        raise TypeError("minimize_many needs an @njit hessp (numba.njit); got a Python callable")
    LB, UB, BK, bounded = _as_bounds(bounds, K, n)
    if bounded and entry.name in _NO_BOUNDS:
        raise ValueError(f"method '{entry.name}' does not support bounds; use method='lbfgs' "
                         "(L-BFGS-B) for bounds")  # fmt: skip

    # the first problem's evaluation from Python: clear errors for bad types
    x_chk = np.clip(X[0], LB[0], UB[0])
    first_args = (*(r[0] for r in rows), *shared_args)
    fns = _functions(fun, jac, x_chk, first_args)
    setup = _Setup(entry, method_opts, common, fns, hessp, maxiter, gtol, BK, x_chk, first_args)
    kind, loops, P = (_first_order_plan if entry.kind == "first-order"
                      else _PLANS[entry.name])(setup)  # fmt: skip
    if parallel is None:
        parallel = K >= PARALLEL_MIN_PROBLEMS and numba.get_num_threads() > 1
    driver = _compile(kind, fns[1], loops, len(rows), len(shared_args), bool(parallel))
    XO = np.empty((K, n))
    GO = np.empty((K, n))
    FO = np.empty(K)
    IO = np.zeros((K, 5), dtype=np.int64)
    # serial: one chunk (one set of work arrays); parallel: a few chunks a thread
    nchunks = min(K, 4 * numba.get_num_threads()) if parallel else 1
    driver(X, LB, UB, BK, bounded, XO, GO, FO, IO, P, nchunks, *rows, *shared_args)

    status = IO[:, _STATUS].copy()
    messages = {**_status.MESSAGES, BAD_SHAPE: f"jac returned an array whose shape is not ({n},)."}
    return OptimizeResult(
        x=XO, fun=FO, jac=GO, status=status,
        success=np.isin(status, list(_status.SUCCESSFUL)),
        nit=IO[:, _NIT].copy(), nfev=IO[:, _NFEV].copy(), njev=IO[:, _NJEV].copy(),
        nhev=IO[:, _NHEV].copy(),
        # (a list of Python ints, and no f-string built for a known status:
        # that was 2% of a 2,000-fit call)
        message=[messages[s] if s in messages else f"status {s}" for s in status.tolist()],
    )  # fmt: skip


# --------------------------------------------------------------------------
# Plans: for each method, which per-problem set-up runs, its bound loop(s)
# and the options tuple P, as the solver's own ``run`` computes them.

#: methods that refuse bounds (as in :func:`fastopt.minimize`)
_NO_BOUNDS = ("scg", "hessian-free")


class _Setup(NamedTuple):
    entry: object
    opts: object  # the method's options (validated)
    common: dict
    fns: tuple  # (fun_only, fg, grad, grad_calls_fun)
    hessp: object
    maxiter: int
    gtol: float
    BK: np.ndarray
    x: np.ndarray  # the first problem's start and arguments: products' checks
    args: tuple


def _bound(lazy, *fns):
    loop, first = lazy.bind(*fns)
    if first:
        raise RuntimeError("minimize_many needs fastopt's sources (a frozen install?)")
    return loop


def _product(setup, fn, name):
    """``fn`` checked once from Python (the first problem) and wrapped as ``minimize`` does."""
    from .solvers._products import prepare_diagonal, prepare_product

    if fn is None:
        return None
    if not is_jitted(fn):
        raise TypeError(f"minimize_many needs an @njit {name} (numba.njit); got {fn!r}")
    if name == "diagonal":
        return prepare_diagonal(fn, True, setup.x, setup.args)[0]
    return prepare_product(fn, True, setup.x, setup.args, name)[0]


def _first_order_plan(setup):
    from .drivers import first_order as fo
    from .kernels import cpu

    opts, maxiter = setup.opts, setup.maxiter
    if opts._lr_of is not None:
        lrs = np.array([opts._lr_of(k, opts.base_lr) for k in range(maxiter + 1)])
    else:
        lrs = np.array([opts.base_lr])
    (loop, first), _ = fo.compiled_loops(opts.kid, setup.fns[1])
    if first:
        raise RuntimeError("minimize_many needs fastopt's sources (a frozen install?)")
    S0 = opts.init(np.zeros(setup.x.shape[0])).slots
    P = (maxiter, setup.gtol, opts.kid, S0, opts.h, lrs, cpu.N_COEFFS, 0, 1, opts.zero_steps)
    return "first-order", {"loop": loop}, P


def _lbfgs_plan(setup):
    from .solvers import lbfgs
    from .solvers._run import ALL_STEPS

    opts, fg = setup.opts, setup.fns[1]
    P = (setup.maxiter, lbfgs._max_evaluations(opts), setup.gtol, float(opts.ftol),
         int(opts.maxls), lbfgs._c1(opts, False), lbfgs._c1(opts, True), float(opts.c2),
         int(opts.maxcor), ALL_STEPS)  # fmt: skip
    if not setup.BK.any():
        return "lbfgs", {"loop": _bound(lbfgs._LOOP, lbfgs._unchecked(fg))}, P
    if setup.BK.all():
        return "lbfgsb", {"loop": _bound(lbfgs._BLOOP, lbfgs._unchecked(fg))}, P
    return "lbfgs-mixed", {"loop_u": _bound(lbfgs._LOOP, lbfgs._unchecked(fg)),
                           "loop_b": _bound(lbfgs._BLOOP, lbfgs._unchecked(fg))}, P  # fmt: skip


def _scg_plan(setup):
    from .solvers import scg
    from .solvers._run import ALL_STEPS

    opts = setup.opts
    fun_only, fg, grad, grad_calls_fun = setup.fns
    lam0, ftol0, xtol0 = scg._VARIANT_DEFAULTS[opts.variant]
    P = (setup.maxiter, 2**62 if opts.maxfev is None else int(opts.maxfev), setup.gtol,
         ftol0 if opts.ftol is None else float(opts.ftol),
         xtol0 if opts.xtol is None else float(opts.xtol), float(opts.sigma),
         opts.variant == "netlab", opts.restart == "powell", 1 if grad_calls_fun else 0,
         lam0 if opts.lambda_ is None else float(opts.lambda_), ALL_STEPS)  # fmt: skip
    hessp = _product(setup, setup.hessp, "hessp")
    loop = _bound(scg._LOOP, None if grad_calls_fun else fun_only, fg, grad, hessp)
    return "scg", {"loop": loop}, P


def _hf_plan(setup):
    from .solvers import hessian_free as hf
    from .solvers._products import fd_relative_step
    from .solvers._run import ALL_STEPS

    opts = setup.opts
    fun_only, fg, grad, grad_calls_fun = setup.fns
    if opts.gradient_batch_size is not None:
        raise ValueError("option 'gradient_batch_size' is not available in minimize_many")
    diagonal = None
    if opts.diagonal is not None and opts.preconditioner == "gradient":
        diagonal = _product(setup, opts.diagonal, "diagonal")
    if opts.gauss_newton is not None:
        prod = _product(setup, opts.gauss_newton, "gauss_newton")
    else:
        prod = _product(setup, setup.hessp, "hessp")
    lam0 = float(opts.lambda_)
    P = (setup.maxiter, 2**62, setup.gtol, int(opts.cg_maxiter), float(opts.cg_tol),
         float(opts.cg_decay), 1 if opts.preconditioner == "gradient" else 0, 1,
         bool(setup.common["shuffle"]), 1.0, 1 if grad_calls_fun else 0, lam0,
         hf._LAMBDA_MIN_RATIO * lam0, hf._LAMBDA_MAX_RATIO * lam0,
         fd_relative_step(opts.fd_step, None),  # the gradients here are exact
         hf.save_schedule(opts.cg_maxiter), ALL_STEPS)  # fmt: skip
    loop = _bound(hf._LOOP, None if grad_calls_fun else fun_only, fg, grad, prod, diagonal)
    return "hessian-free", {"loop": loop}, P


def _ada_plan(setup):
    from ._batching import seed_state
    from .solvers import adahessian as ada
    from .solvers._run import ALL_STEPS

    opts = setup.opts
    fun_only, fg, grad, grad_calls_fun = setup.fns
    hessp = diagonal = None
    if opts.diagonal is not None:
        diagonal = _product(setup, opts.diagonal, "diagonal")
    else:
        hessp = _product(setup, setup.hessp, "hessp")
    seed = opts.seed if opts.seed is not None else setup.common["seed"]
    P = (setup.maxiter, 2**62, setup.gtol, 1, bool(setup.common["shuffle"]),
         float(opts.learning_rate), float(opts.b1), float(opts.b2), float(opts.eps),
         float(opts.hessian_power), int(opts.update_every),
         opts.estimator == "equilibration" and diagonal is None, 1 if grad_calls_fun else 0,
         float(opts.fd_step), seed_state(seed) ^ np.uint64(ada._Z_SALT), ALL_STEPS)  # fmt: skip
    loop = _bound(ada._LOOP, fg, grad, hessp, diagonal)
    return "adahessian", {"loop": loop}, P


#: the second-order methods' plans, by registry name
_PLANS = {"lbfgs": _lbfgs_plan, "scg": _scg_plan, "hessian-free": _hf_plan,
          "adahessian": _ada_plan}  # fmt: skip
