r"""Hessian-free optimization (Martens 2010), truncated Newton with damping.

Each outer iteration minimizes the damped quadratic model

.. math::

    \phi(p) = \tfrac12 p^T B p + g^T p, \qquad B = G + \lambda I,

by preconditioned conjugate gradient, using only curvature products
:math:`Gv`: the Hessian (``hessp``), a Gauss-Newton product (option
``gauss_newton``), or a finite difference of the gradient.  The CG solution
is backtracked over its own iterates, the damping :math:`\lambda` follows the
reduction ratio :math:`\rho` (Levenberg-Marquardt), and an Armijo line search
picks the step length.
"""

import math
from typing import Any, NamedTuple

import numpy as np

from .. import _jit
from .._batching import take_args
from .._status import (
    EPOCHS,
    LINESEARCH,
    MAXITER,
    NONFINITE_F,
    NONFINITE_G,
    NONFINITE_H,
    SUCCESS,
)
from ._lazy_loop import LazyLoop, dual, use_compiled
from ._products import (
    check_fd_step,
    curvature_product,
    fd_relative_step,
    prepare_diagonal,
    prepare_product,
)
from ._run import (
    RUNNING,
    batch_setup,
    drive,
    grad_fev,
    initial_fg,
    next_batch,
    nonfinite_fg,
    reject_bounds,
    result,
    start_fg,
    start_point,
)
from ._vectors import all_finite, copy_into, dot, inf_norm, lincomb, scale

ALIASES = ("hf",)

#: ``batch_size``/``epochs`` apply: curvature (and gradient) batches, Martens 2010
#: (read by the registry)
MINIBATCH = True

PRECONDITIONERS = ("gradient", "none")
REDUCTIONS = ("mean", "sum")

#: Martens' damping rule: thresholds on rho and the factors applied to lambda
_RHO_LOW, _RHO_HIGH = 0.25, 0.75
_BOOST, _DROP = 1.5, 2.0 / 3.0
#: Armijo line search (Martens & Sutskever 2012): c, shrink factor, most tries
_ARMIJO_C, _ARMIJO_SHRINK, _ARMIJO_TRIES = 1e-2, 0.8, 60
#: CG iterates kept for backtracking: i = ceil(5 * 1.3**j)
_SAVE_FIRST, _SAVE_RATIO = 5, 1.3
#: CG also stops once the preconditioned residual r^T M^-1 r has fallen by
#: this factor (1e-10 squared): the system is then solved to rounding, and
#: Martens' progress test could not fire before iteration 11.
_CG_RESIDUAL_FLOOR = 1e-20
#: bounds on the damping, relative to its initial value ``lambda_``.  Below:
#: where the model keeps being good (rho > 3/4) lambda shrinks by 2/3 every
#: iteration; unbounded it underflowed to 4.9e-324 on rosenbrock(100), the
#: preconditioner (g^2 + lambda)^(3/4) became singular where g_j ~ 0 (the
#: gradient, unlike Martens' per-example sum of squares, vanishes at a
#: stationary point), CG crawled for 2400 iterations and then overflowed
#: (issue #3).  Above: a damping 1e100 times the start means steps below
#: rounding; the run stops (LINESEARCH) rather than overflow.
_LAMBDA_MIN_RATIO, _LAMBDA_MAX_RATIO = 1e-8, 1e100


class Options(NamedTuple):
    r"""Options of ``method="hessian-free"`` (alias ``"hf"``).

    Attributes
    ----------
    lambda_ : float
        Initial damping :math:`\lambda`. Default 1.0 (Martens' 45 assumes his
        per-case normalisation of the objective).  The damping then stays
        within :math:`[10^{-8}, 10^{100}]` times this value (see ``run``).
    cg_maxiter : int
        Maximum CG iterations per outer iteration. Default 250.
    cg_tol : float
        :math:`\epsilon` of Martens' CG stop: with :math:`k = \max(10,
        \lceil 0.1 i\rceil)`, stop when :math:`i > k`, :math:`\phi_i < 0` and
        :math:`(\phi_i - \phi_{i-k})/\phi_i < k\epsilon`. Default 5e-4.
    cg_decay : float
        CG starts from ``cg_decay`` times the previous CG solution. Default
        0.95.
    preconditioner : {"gradient", "none"}
        ``"gradient"``: :math:`M = (D + \lambda)^{3/4}` with :math:`D = g \odot g`
        (Martens' :math:`\mathrm{diag}(\sum_i g_i^2)` with the gradient in
        place of per-example gradients), or :math:`D` from ``diagonal`` when
        given; ``"none"``: :math:`M = I`.
    diagonal : callable or None
        ``diagonal(x, *args) -> ndarray of shape (n,)``: a curvature diagonal
        (Gauss-Newton or Hessian; negative entries count by their absolute
        value) for the preconditioner, evaluated on the curvature batch at
        every outer iteration and counted in ``nhev``.  The squared gradient
        vanishes at a stationary point and makes a poor preconditioner for a
        deterministic objective (rosenbrock(100): 447 iterations, 96,875
        products; with the Gauss-Newton diagonal 164 and 3,053).
        :mod:`fastopt.models` passes its Gauss-Newton diagonal.  Must be an
        ``@njit`` function for the compiled loop to be used.
    gauss_newton : callable or None
        ``gauss_newton(x, v, *args) -> G v``, a Gauss-Newton (or other
        positive semi-definite) curvature product; used instead of ``hessp``.
        For least squares :math:`f = \sum r_i^2` it is :math:`2 J^T J v`.
        Must be an ``@njit`` function for the compiled loop to be used.
    gradient_batch_size : int or None
        Minibatch mode only: draw the gradient (and the line-search values)
        from a random batch of this size instead of the full data.
    reduction : {"mean", "sum"}
        Minibatch mode only: whether ``fun`` averages or sums over the
        samples in ``args``. With ``"sum"``, values, gradients and curvature
        products on a batch of ``b`` of ``N`` samples are scaled by ``N/b``
        so that all describe the full objective.
    fd_step : float or None
        Relative step :math:`\sigma` of the finite-difference curvature
        products used without ``hessp``/``gauss_newton``,
        :math:`Gv \approx (\nabla f(x + e v) - \nabla f(x))/e`,
        :math:`e = \sigma (1 + \|x\|)/\|v\|`.  Default None:
        :math:`\sqrt{\epsilon_{mach}}` with an exact gradient, :math:`10^{-4}`
        when the gradient is itself a finite difference (``jac=None`` or a
        scheme), whose rounding error a step of
        :math:`\sqrt{\epsilon_{mach}}` would blow up to :math:`O(|f|)` in
        every product (see :func:`fastopt.solvers._products.fd_relative_step`).
    """

    lambda_: float = 1.0
    cg_maxiter: int = 250
    cg_tol: float = 5e-4
    cg_decay: float = 0.95
    preconditioner: str = "gradient"
    diagonal: Any = None
    gauss_newton: Any = None
    gradient_batch_size: int | None = None
    reduction: str = "mean"
    fd_step: float | None = None


def validate(opts):
    """Raise ValueError for an invalid option, naming the value."""
    if not (math.isfinite(opts.lambda_) and opts.lambda_ > 0):
        raise ValueError(f"Invalid lambda_ value: {opts.lambda_}")
    if not (isinstance(opts.cg_maxiter, int | np.integer) and opts.cg_maxiter >= 1):
        raise ValueError(f"Invalid cg_maxiter value: {opts.cg_maxiter}")
    if not (math.isfinite(opts.cg_tol) and opts.cg_tol > 0):
        raise ValueError(f"Invalid cg_tol value: {opts.cg_tol}")
    if not (0.0 <= opts.cg_decay <= 1.0):
        raise ValueError(f"Invalid cg_decay value: {opts.cg_decay}")
    if opts.preconditioner not in PRECONDITIONERS:
        raise ValueError(
            f"Invalid preconditioner value: {opts.preconditioner!r} "
            f"(expected one of {PRECONDITIONERS})"
        )
    if opts.diagonal is not None and not callable(opts.diagonal):
        raise ValueError(f"Invalid diagonal value: {opts.diagonal!r} (not callable)")
    if opts.gauss_newton is not None and not callable(opts.gauss_newton):
        raise ValueError(f"Invalid gauss_newton value: {opts.gauss_newton!r} (not callable)")
    gbs = opts.gradient_batch_size
    if gbs is not None and not (isinstance(gbs, int | np.integer) and gbs >= 1):
        raise ValueError(f"Invalid gradient_batch_size value: {gbs}")
    if opts.reduction not in REDUCTIONS:
        raise ValueError(
            f"Invalid reduction value: {opts.reduction!r} (expected one of {REDUCTIONS})"
        )
    check_fd_step(opts.fd_step)


def save_schedule(cg_maxiter):
    """CG iterations whose iterates are kept: ``ceil(5 * 1.3**j) <= cg_maxiter``."""
    out = []
    j = 0
    while True:
        i = math.ceil(_SAVE_FIRST * _SAVE_RATIO**j)
        if i > cg_maxiter:
            break
        if not out or i > out[-1]:
            out.append(i)
        j += 1
    return np.array(out, dtype=np.int64)


# The CG algebra lives in cached kernels: they compile once per machine (not
# once per user function, as the loops that call the user's functions must),
# and the Python driver calls the same machine code, so both paths agree.
# ``cgi = [i, nsave, jsave]`` and ``cgf = [ry, ry0]`` carry CG's counters.

_CG_CONTINUE, _CG_STOP, _CG_NONFINITE = 0, 1, 2


@_jit.kernel
def _cg_start(g, diag, square, p_prev, decay, lam, precond, m_inv, b, d, r):
    """Preconditioner, right-hand side and warm start; True if ``d != 0``.

    The preconditioner's diagonal is ``diag**2`` (``square``: the gradient)
    or ``|diag|`` (a curvature diagonal).
    """
    warm = False
    for j in range(g.shape[0]):
        if precond == 1:
            dj = diag[j] * diag[j] if square else abs(diag[j])
            # (D + lam)^(-3/4) from square roots only: pow() is not
            # correctly rounded and NumPy's differs from libm's.
            root = math.sqrt(dj + lam)
            m_inv[j] = 1.0 / (root * math.sqrt(root))
        else:
            m_inv[j] = 1.0
        b[j] = -g[j]
        d[j] = decay * p_prev[j]
        r[j] = b[j]
        if d[j] != 0.0:
            warm = True
    return warm


@_jit.kernel
def _cg_warm(bd, d, r, b, cscale, lam):
    """Residual and model value of the warm start ``d``; falls back to 0.

    Returns phi(d) (NaN or inf when the product was not finite).  If the old
    solution is no better than 0 on the new model, CG starts from 0.
    """
    phi = 0.0
    for j in range(d.shape[0]):
        r[j] = b[j] - (cscale * bd[j] + lam * d[j])
        phi += d[j] * (r[j] + b[j])
    phi = -0.5 * phi
    if math.isfinite(phi) and not phi < 0.0:
        for j in range(d.shape[0]):
            d[j] = 0.0
            r[j] = b[j]
        phi = 0.0
    return phi


@_jit.kernel
def _cg_init(r, m_inv, y, pdir, phis, phi0, cgi, cgf):
    """First preconditioned residual and search direction."""
    ry = 0.0
    for j in range(r.shape[0]):
        y[j] = r[j] * m_inv[j]
        pdir[j] = y[j]
        ry += r[j] * y[j]
    phis[0] = phi0
    cgi[0] = 0
    cgi[1] = 0
    cgi[2] = 0
    cgf[0] = ry
    cgf[1] = ry


@_jit.kernel
def _cg_move(d, r, pdir, bp, b, alpha):
    """``d += alpha pdir``, ``r -= alpha B pdir``; returns the new phi.

    Nothing moves (and the result is NaN or inf) when the step or the new
    model value is not finite: CG then stops on the iterate it has.
    """
    if not math.isfinite(alpha):
        return math.inf
    phi = 0.0
    for j in range(d.shape[0]):
        phi += (d[j] + alpha * pdir[j]) * ((r[j] - alpha * bp[j]) + b[j])
    phi = -0.5 * phi
    if not math.isfinite(phi):
        return phi
    for j in range(d.shape[0]):
        d[j] += alpha * pdir[j]
        r[j] -= alpha * bp[j]
    return phi


@_jit.kernel
def _cg_step(
    bp_raw, bp, d, r, y, pdir, b, m_inv, cscale, lam,
    phis, saved, saved_phi, save_at, cgi, cgf, cg_tol, cg_maxiter,
):  # fmt: skip
    """One preconditioned CG iteration on ``B d = b`` given ``bp_raw = G pdir``.

    :math:`\\phi_i = \\tfrac12 d^T B d - b^T d = -\\tfrac12 d^T (r + b)`.
    Keeps the iterates at ``save_at`` and applies Martens' stop; returns
    ``_CG_CONTINUE``, ``_CG_STOP`` or ``_CG_NONFINITE`` (the product itself
    is not finite).  CG stops cleanly, on the iterate it has, on
    non-positive curvature, a vanishing residual, or a step or model value
    that overflows (issue #3: with the damping underflowed to 4.9e-324, the
    preconditioned vectors overflowed and ended the run with NaN).
    """
    n = d.shape[0]
    i = cgi[0]
    ry = cgf[0]
    pbp = 0.0
    for j in range(n):
        if not math.isfinite(bp_raw[j]):
            return _CG_NONFINITE
        bp[j] = cscale * bp_raw[j] + lam * pdir[j]
        pbp += pdir[j] * bp[j]
    if not math.isfinite(pbp):
        # A finite product, but p'Bp overflowed: CG's vectors are out of range.
        return _CG_STOP
    if pbp <= 0.0:
        # Negative curvature (exact Hessian or finite differences): stop.
        # With no iterate yet, step along pdir with |p'Bp| (or lambda |p|^2)
        # in place of the curvature, so there is a descent step to try.
        if i == 0:
            pp = 0.0
            for j in range(n):
                pp += pdir[j] * pdir[j]
            den = max(-pbp, lam * pp)
            if den > 0.0:
                phi = _cg_move(d, r, pdir, bp, b, ry / den)
                if math.isfinite(phi):
                    cgi[0] = 1
                    phis[1] = phi
        return _CG_STOP
    phi = _cg_move(d, r, pdir, bp, b, ry / pbp)
    if not math.isfinite(phi):
        return _CG_STOP
    i += 1
    cgi[0] = i
    phis[i] = phi
    if cgi[2] < save_at.shape[0] and i == save_at[cgi[2]]:
        for j in range(n):
            saved[cgi[1], j] = d[j]
        saved_phi[cgi[1]] = phi
        cgi[1] += 1
        cgi[2] += 1
    # Martens' stop: relative progress over the last k iterations.
    k = max(10, (i + 9) // 10)
    if i > k and phi < 0.0 and (phi - phis[i - k]) / phi < k * cg_tol:
        return _CG_STOP
    ry_new = 0.0
    for j in range(n):
        y[j] = r[j] * m_inv[j]
        ry_new += r[j] * y[j]
    if ry_new == 0.0:
        return _CG_STOP
    beta = ry_new / ry
    for j in range(n):
        pdir[j] = y[j] + beta * pdir[j]
    cgf[0] = ry_new
    if i >= cg_maxiter or ry_new <= _CG_RESIDUAL_FLOOR * cgf[1]:
        return _CG_STOP
    return _CG_CONTINUE


@_jit.kernel
def _cg_finish(d, phis, saved, saved_phi, save_at, cgi):
    """Keep the last CG iterate (unless just kept); returns the number kept."""
    i = cgi[0]
    nsave = cgi[1]
    if nsave == 0 or save_at[cgi[2] - 1] != i:
        for j in range(d.shape[0]):
            saved[nsave, j] = d[j]
        saved_phi[nsave] = phis[i]
        nsave += 1
    return nsave


@dual
def hf_iteration(
    fun, fg, grad, prod, diagonal, x, f, g, gargs, cargs, lam, p_prev, saved, saved_phi,
    phis, save_at, cg_maxiter, cg_tol, decay, precond, separate_curv, cscale, gscale, gfev,
    lam_min, lam_max, fd_step,
):  # fmt: skip
    """One outer iteration: CG on the damped model, backtracking, damping, line search.

    ``f, g`` are the (scaled) value and gradient at ``x`` on ``gargs``.
    Finite-difference products call the gradient-only ``grad`` (each call
    counts ``gfev`` function evaluations: 1 when it evaluates ``fun`` too).
    ``fun`` None (``jac=True``: a value costs a value-and-gradient anyway)
    evaluates the trial points with ``fg`` and keeps the gradient of the
    accepted one, so the caller need not evaluate that point again (issue
    11: no point evaluated twice in a row); resolved at compile time.
    Returns ``(status, accepted, x_new, f_new, g_new, lam, p_last, nfev,
    njev, nhev)``: ``status`` is RUNNING unless a value turned non-finite or
    the line search failed along a descent direction; ``f_new`` is the
    (scaled) value at ``x_new`` on ``gargs``, from the line search, and
    ``g_new`` its unscaled gradient there when ``fun`` is None (else ``g``,
    unused); ``p_last`` is the last CG iterate (the next warm start).
    """
    n = x.shape[0]
    nfev = 0
    njev = 0
    nhev = 0
    if prod is None and separate_curv:
        # Minibatch mode: the finite difference needs the gradient on the
        # curvature batch itself.
        gc = grad(x, *cargs)
        nfev += gfev
        njev += 1
    else:
        gc = g
    m_inv = np.empty(n)
    b = np.empty(n)
    d = np.empty(n)
    r = np.empty(n)
    y = np.empty(n)
    pdir = np.empty(n)
    bp = np.empty(n)
    cgi = np.zeros(3, dtype=np.int64)
    cgf = np.zeros(2)
    phi0 = 0.0
    # The preconditioner's diagonal: the user's curvature diagonal on the
    # curvature batch, else the gradient (squared in _cg_start).
    if diagonal is not None and precond == 1:
        dv = diagonal(x, *cargs)
        nhev += 1
        if not all_finite(dv):
            return NONFINITE_H, False, x, f, g, lam, p_prev, nfev, njev, nhev
        square = False
    else:
        dv = g
        square = True
    # Warm start from decay * p_prev (Martens 2010, "sharing information
    # across iterations").
    if _cg_start(g, dv, square, p_prev, decay, lam, precond, m_inv, b, d, r):
        bd = curvature_product(prod, grad, x, d, gc, cargs, fd_step)
        if prod is None:
            nfev += gfev
            njev += 1
        else:
            nhev += 1
        phi0 = _cg_warm(bd, d, r, b, cscale, lam)
        if not math.isfinite(phi0):
            return NONFINITE_H, False, x, f, g, lam, p_prev, nfev, njev, nhev
    _cg_init(r, m_inv, y, pdir, phis, phi0, cgi, cgf)
    code = _CG_CONTINUE if cgf[0] > 0.0 else _CG_STOP
    while code == _CG_CONTINUE:
        bp_raw = curvature_product(prod, grad, x, pdir, gc, cargs, fd_step)
        if prod is None:
            nfev += gfev
            njev += 1
        else:
            nhev += 1
        code = _cg_step(
            bp_raw, bp, d, r, y, pdir, b, m_inv, cscale, lam,
            phis, saved, saved_phi, save_at, cgi, cgf, cg_tol, cg_maxiter,
        )  # fmt: skip
    if code == _CG_NONFINITE:
        return NONFINITE_H, False, x, f, g, lam, p_prev, nfev, njev, nhev
    nsave = _cg_finish(d, phis, saved, saved_phi, save_at, cgi)
    p_last = d
    # Backtrack over the kept CG iterates, from the last, while f decreases.
    best = nsave - 1
    if fun is None:
        f_best, g_best = fg(lincomb(1.0, x, 1.0, saved[best]), *gargs)
        f_best = gscale * f_best
        njev += 1
    else:
        f_best = gscale * fun(lincomb(1.0, x, 1.0, saved[best]), *gargs)
        g_best = g
    nfev += 1
    if not math.isfinite(f_best):
        return NONFINITE_F, False, x, f, g, lam, p_last, nfev, njev, nhev
    c = best - 1
    while c >= 0:
        if fun is None:
            f_c, g_c = fg(lincomb(1.0, x, 1.0, saved[c]), *gargs)
            f_c = gscale * f_c
            njev += 1
        else:
            f_c = gscale * fun(lincomb(1.0, x, 1.0, saved[c]), *gargs)
            g_c = g
        nfev += 1
        if not math.isfinite(f_c):
            return NONFINITE_F, False, x, f, g, lam, p_last, nfev, njev, nhev
        if f_c >= f_best:
            break
        best = c
        f_best = f_c
        g_best = g_c
        c -= 1
    p = saved[best].copy()
    # rho against the undamped model: q(p) - q(0) = phi(p) - lam |p|^2 / 2.
    pred = saved_phi[best] - 0.5 * lam * dot(p, p)
    good = False
    if pred < 0.0:
        rho = (f_best - f) / pred
        good = rho >= _RHO_LOW
        if rho > _RHO_HIGH:
            lam = max(lam * _DROP, lam_min)
    if not good:
        lam = min(lam * _BOOST, lam_max)
    # Armijo backtracking along p: f(x + t p) <= f + c t g'p, t = 0.8^j.
    gp = dot(g, p)
    if not gp < 0.0:
        # Not a descent direction (negative curvature or noisy finite
        # differences): reject, and forget the warm start.
        return RUNNING, False, x, f, g, lam, np.zeros(n), nfev, njev, nhev
    rate = 1.0
    f_try = f_best
    g_try = g_best
    tries = 1
    while f_try > f + _ARMIJO_C * rate * gp:
        if tries == _ARMIJO_TRIES:
            return LINESEARCH, False, x, f, g, lam, p_last, nfev, njev, nhev
        rate *= _ARMIJO_SHRINK
        if fun is None:
            f_try, g_try = fg(lincomb(1.0, x, rate, p), *gargs)
            f_try = gscale * f_try
            njev += 1
        else:
            f_try = gscale * fun(lincomb(1.0, x, rate, p), *gargs)
        nfev += 1
        tries += 1
        if not math.isfinite(f_try):
            return NONFINITE_F, False, x, f, g, lam, p_last, nfev, njev, nhev
    # f_try (and g_try) were evaluated at this very point (same expression,
    # same bits).
    x_new = lincomb(1.0, x, rate, p)
    return RUNNING, True, x_new, f_try, g_try, lam, p_last, nfev, njev, nhev


def _hf_loop(
    fun, fg, grad, prod, diagonal, args, x, g, p_prev, gidx,
    saved, saved_phi, phis, save_at, perm_c, perm_g, rng, fs, ns,
    nsteps, maxiter, n_updates, gtol, cg_maxiter, cg_tol, decay, precond,
    batch_size, do_shuffle, gbs, cscale, gscale, gfev,
):  # fmt: skip
    """Run outer iterations until ``nsteps`` more are done or a stop test.

    After an accepted step on the full data the value there is the line
    search's, so only the gradient is evaluated (``grad``; ``gfev`` function
    evaluations per call), or nothing when ``fun`` is None (``jac=True``:
    the line search evaluated ``fg`` there and kept its gradient); a new
    gradient batch needs both (``fg``).

    ``prod`` None selects finite-difference products, ``perm_c`` None the
    full-data mode and ``perm_g`` None the full-data gradient: compiled,
    these None tests are resolved at compile time (numba prunes the dead
    branches), so each mode compiles only its own code.

    State in and out: ``x, g, p_prev`` (returned, possibly new arrays),
    ``gidx`` (indices of the current gradient batch), ``rng`` (the two
    SplitMix64 states: curvature and gradient batches), and
    ``fs = [f, lam, lam_min, lam_max, fd_step]``, ``ns = [nit, nfev, njev, nhev, cpos, gpos, glen,
    batches]`` updated in place.
    """
    f = float(fs[0])
    lam = float(fs[1])
    lam_min = float(fs[2])
    lam_max = float(fs[3])
    fd_step = float(fs[4])
    nit = int(ns[0])
    nfev = int(ns[1])
    njev = int(ns[2])
    nhev = int(ns[3])
    cpos = int(ns[4])
    gpos = int(ns[5])
    glen = int(ns[6])
    batches = int(ns[7])
    cstate = rng[0]
    gstate = rng[1]
    stop_at = nit + nsteps
    status = RUNNING
    while True:
        if nit >= stop_at:
            break
        # The gradient test needs the full gradient (not a gradient batch).
        if perm_g is None:
            if inf_norm(g) <= gtol:
                status = SUCCESS
                break
        if nit >= maxiter:
            status = MAXITER
            break
        if batches >= n_updates:
            status = EPOCHS
            break
        # One curvature minibatch per outer iteration (Martens 2010, "handling
        # large datasets").
        if perm_c is not None:
            cidx, cpos, cstate, _ = next_batch(perm_c, cpos, batch_size, cstate, do_shuffle)
            batches += 1
            if perm_g is not None:
                res = hf_iteration(
                    fun, fg, grad, prod, diagonal, x, f, g, take_args(args, gidx[:glen]),
                    take_args(args, cidx), lam, p_prev, saved, saved_phi, phis, save_at,
                    cg_maxiter, cg_tol, decay, precond, True, cscale, gscale, gfev,
                    lam_min, lam_max, fd_step,
                )  # fmt: skip
            else:
                res = hf_iteration(
                    fun, fg, grad, prod, diagonal, x, f, g, args, take_args(args, cidx), lam,
                    p_prev, saved, saved_phi, phis, save_at, cg_maxiter, cg_tol,
                    decay, precond, True, cscale, 1.0, gfev, lam_min, lam_max, fd_step,
                )  # fmt: skip
        else:
            res = hf_iteration(
                fun, fg, grad, prod, diagonal, x, f, g, args, args, lam, p_prev, saved,
                saved_phi, phis, save_at, cg_maxiter, cg_tol, decay, precond,
                False, 1.0, 1.0, gfev, lam_min, lam_max, fd_step,
            )  # fmt: skip
        status, accepted, x_new, f_try, g_try, lam, p_prev, dfev, djev, dhev = res
        nfev += dfev
        njev += djev
        nhev += dhev
        if status == RUNNING and not accepted and lam >= lam_max:
            # Damped to no step at all: nothing left to try.
            status = LINESEARCH
        if status != RUNNING:
            break
        if accepted:
            if perm_g is not None:
                # The next iteration's gradient batch, evaluated at the new x.
                idx, gpos, gstate, _ = next_batch(perm_g, gpos, gbs, gstate, True)
                glen = idx.shape[0]
                copy_into(gidx, idx)
                f_new, g_new = fg(x_new, *take_args(args, idx))
                f_new = gscale * f_new
                g_new = scale(gscale, g_new)
                nfev += 1
                njev += 1
            elif fun is None:
                # fg at the accepted point gave its gradient too: no call
                f_new = f_try
                g_new = g_try
            else:
                f_new = f_try
                g_new = grad(x_new, *args)
                nfev += gfev
                njev += 1
            if not math.isfinite(f_new):
                status = NONFINITE_F
                break
            if not all_finite(g_new):
                status = NONFINITE_G
                break
            x = x_new
            f = float(f_new)
            g = g_new
        nit += 1
    fs[0] = f
    fs[1] = lam
    ns[0] = nit
    ns[1] = nfev
    ns[2] = njev
    ns[3] = nhev
    ns[4] = cpos
    ns[5] = gpos
    ns[6] = glen
    ns[7] = batches
    rng[0] = cstate
    rng[1] = gstate
    return status, x, g, p_prev


_LOOP = LazyLoop(_hf_loop, 5, cache=True, specialise={"hf_iteration": 5, "curvature_product": 2})


def run(obj, opts):
    r"""Minimize ``obj`` by Hessian-free optimization.

    Parameters
    ----------
    obj : fastopt._objective.Objective
        The problem. ``obj.hessp`` gives exact Hessian products; in minibatch
        mode (``obj.batch_size``) each outer iteration draws one curvature
        batch of that size, and ``obj.epochs`` epochs of curvature batches
        bound the run.
    opts : Options
        Method options (see :class:`Options`).

    Returns
    -------
    dict
        ``x, fun, jac, status, nit, nfev, njev, nhev`` (and ``allvecs``).
        ``nit`` counts outer iterations (rejected steps included);
        finite-difference products count in ``njev`` (one ``obj.grad`` call
        each; in ``nfev`` too when that evaluates ``fun``, as with
        ``jac=True``), ``hessp`` and Gauss-Newton products in ``nhev``.

    Notes
    -----
    One outer iteration (Martens 2010; Martens & Sutskever 2012):

    1. :math:`g = \nabla f(x)` on the full data (or on a gradient batch);
    2. curvature products :math:`Bv = Gv + \lambda v` on a curvature batch,
       :math:`G` the Gauss-Newton matrix (option ``gauss_newton``), else the
       Hessian (``hessp``), else :math:`(\nabla f(x + ev) - \nabla f(x))/e`
       with :math:`e = \sqrt{\epsilon_{mach}}(1 + \|x\|)/\|v\|`;
    3. preconditioned CG on :math:`Bp = -g` from :math:`0.95\,p_{prev}` (the
       previous CG solution), preconditioner :math:`(g^2 + \lambda)^{3/4}`,
       stopped by Martens' relative-progress test (or after ``cg_maxiter``
       iterations, on :math:`p^T B p \le 0`, or when the residual vanishes);
    4. the iterates at :math:`i = \lceil 5 \cdot 1.3^j \rceil` and the last
       are kept; walk back over them while :math:`f(x + p_i)` decreases;
    5. :math:`\rho = (f(x+p) - f(x))/(q(p) - q(0))`, :math:`q` the
       undamped model; :math:`\lambda \mathrel{*}= 3/2` if :math:`\rho < 1/4`
       (or undefined), :math:`\lambda \mathrel{*}= 2/3` if :math:`\rho > 3/4`,
       kept within :math:`[10^{-8}, 10^{100}]\,\lambda_0`: the gradient
       preconditioner :math:`(g^2 + \lambda)^{3/4}` turns singular as
       :math:`g \to 0` unless :math:`\lambda` stays positive (on
       ``rosenbrock(100)`` an unbounded :math:`\lambda` underflowed to
       :math:`4.9 \times 10^{-324}` and CG overflowed);
    6. Armijo line search along :math:`p`: the largest :math:`t = 0.8^j`
       (at most 60 values) with :math:`f(x + tp) \le f(x) + 10^{-2} t g^T p`;
       if none, stop with status LINESEARCH (``x`` unchanged).

    After an accepted step on the full data, f there is the line search's
    value: only the gradient is evaluated, and with ``jac=True``
    (``obj.grad_calls_fun``) not even that: the trial points are evaluated
    with ``fg`` and the accepted point's gradient is kept, so no point is
    evaluated twice in a row.  CG stops cleanly, on its current
    iterate, on non-positive curvature, a vanishing residual, or a step that
    would overflow.

    Stops: :math:`\|g\|_\infty \le` ``gtol`` (full gradient only), ``maxiter``
    outer iterations, ``obj.epochs`` epochs of curvature batches (minibatch
    mode), a non-finite value, gradient or curvature product (the last finite
    iterate is returned), a rejected step with :math:`\lambda` at its upper
    bound (LINESEARCH), or a callback's StopIteration. With
    ``obj.compiled`` the loop runs in nopython mode (one outer iteration per
    call with a callback or ``return_all``); in compiled mode the curvature
    product is evaluated once more before the loop, to check its shape.

    References
    ----------
    .. [1] J. Martens, "Deep learning via Hessian-free optimization",
       ICML 2010.
    .. [2] J. Martens and I. Sutskever, "Training deep and recurrent networks
       with Hessian-free optimization", in Neural Networks: Tricks of the
       Trade, 2nd ed., Springer, 2012.
    """
    validate(opts)
    reject_bounds(obj, "hessian-free")
    args = tuple(obj.args)
    x = start_point(obj)
    x0 = x.copy()
    n = x.shape[0]
    minibatch = obj.batch_size is not None
    gbatch = minibatch and opts.gradient_batch_size is not None
    f, g, reused = start_fg(obj, x, args)
    bad = nonfinite_fg(f, g)
    if bad:
        return result(x, f, g, bad, 0, 1, 1, 0, [x0] if obj.return_all else None, reused)

    compiled = use_compiled(obj, opts.gauss_newton, opts.diagonal)
    nhev = 0
    diagonal = None
    if opts.diagonal is not None and opts.preconditioner == "gradient":
        diagonal, nhev = prepare_diagonal(opts.diagonal, compiled, x, args)
    if opts.gauss_newton is not None:
        prod, extra = prepare_product(opts.gauss_newton, compiled, x, args, "gauss_newton")
        nhev += extra
    elif obj.hessp is not None:
        prod, extra = prepare_product(obj.hessp, compiled, x, args, "hessp")
        nhev += extra
    else:
        prod = None

    if minibatch:
        perm_c, cstate, n_samples = batch_setup(obj, args, 0)
        perm_g, gstate, _ = batch_setup(obj, args, 0x9E3779B97F4A7C15)
        batch_size = int(obj.batch_size)
        n_batches = -(-n_samples // batch_size)
        epochs = obj.epochs
        n_updates = 2**62 if epochs is None else int(epochs) * n_batches
        if not gbatch:
            perm_g = None
        sum_scale = opts.reduction == "sum"
        cscale = n_samples / min(batch_size, n_samples) if sum_scale else 1.0
        gbs = int(opts.gradient_batch_size) if gbatch else 1
        gscale = n_samples / min(gbs, n_samples) if (sum_scale and gbatch) else 1.0
    else:
        perm_c = perm_g = None
        cstate = gstate = np.uint64(0)
        batch_size = gbs = 1
        n_updates = 2**62
        cscale = gscale = 1.0
    gidx = np.zeros(max(gbs, 1), dtype=np.int64)
    glen = 0
    nfev = 1
    njev = 1
    if gbatch:
        # The first gradient batch (later ones are drawn after each step).
        idx, gpos, gstate, _ = next_batch(perm_g, 0, gbs, gstate, True)
        glen = idx.shape[0]
        gidx[:glen] = idx
        f, g = initial_fg(obj, x, take_args(args, idx))
        f, g = gscale * f, gscale * g
        nfev += 1
        njev += 1
        bad = nonfinite_fg(f, g)
        if bad:
            return result(x, f, g, bad, 0, nfev, njev, nhev, [x0] if obj.return_all else None,
                          reused)  # fmt: skip
    else:
        gpos = 0

    save_at = save_schedule(opts.cg_maxiter)
    saved = np.zeros((save_at.shape[0] + 1, n))
    saved_phi = np.zeros(save_at.shape[0] + 1)
    phis = np.zeros(opts.cg_maxiter + 1)
    rng = np.array([cstate, gstate], dtype=np.uint64)
    lam0 = float(opts.lambda_)
    fd_step = fd_relative_step(opts.fd_step, obj)
    fs = np.array([f, lam0, _LAMBDA_MIN_RATIO * lam0, _LAMBDA_MAX_RATIO * lam0, fd_step])
    ns = np.array([0, nfev, njev, nhev, 0, gpos, glen, 0], dtype=np.int64)
    precond = 1 if opts.preconditioner == "gradient" else 0
    # jac=True: a value costs a value-and-gradient call anyway, so the trial
    # points take fg (fun None) and the accepted one's gradient is kept.
    fun = None if obj.grad_calls_fun else obj.fun
    loop, fns = _LOOP.select(compiled, fun, obj.fg, obj.grad, prod, diagonal)
    gfev = grad_fev(obj)
    state = [x, g, np.zeros(n)]

    def advance(nsteps):
        status, state[0], state[1], state[2] = loop(
            *fns, args, state[0], state[1], state[2], gidx,
            saved, saved_phi, phis, save_at, perm_c, perm_g, rng, fs, ns,
            nsteps, int(obj.maxiter), n_updates, float(obj.gtol), int(opts.cg_maxiter),
            float(opts.cg_tol), float(opts.cg_decay), precond, batch_size,
            bool(obj.shuffle), gbs, float(cscale), float(gscale), gfev,
        )  # fmt: skip
        return status

    def current():
        return state[0], float(fs[0]), state[1], int(ns[0])

    # one outer iteration can take up to cg_maxiter products: a first chunk
    # of one keeps Ctrl-C prompt (one more call, ~3 us, on a short run)
    status, allvecs = drive(advance, current, obj, x0, first_chunk=1)
    x, f, g = state[0], float(fs[0]), state[1]
    nfev, njev = int(ns[1]), int(ns[2])
    if gbatch:
        # fun and jac of the result are on the full data.
        f, g = initial_fg(obj, x, args)
        nfev += 1
        njev += 1
    return result(x, f, g, status, ns[0], nfev, njev, ns[3], allvecs, reused)
