r"""Limited-memory BFGS (Liu & Nocedal 1989) with a Moré-Thuente line search.

L-BFGS keeps the last ``m`` pairs :math:`s_i = x_{i+1} - x_i`,
:math:`y_i = \nabla f(x_{i+1}) - \nabla f(x_i)` and steps along
:math:`d_k = -H_k \nabla f(x_k)`, where :math:`H_k` is the BFGS inverse
Hessian built from those pairs on top of :math:`H_k^0 = \gamma_k I`,

.. math::

    H_{i+1} = (I - \rho_i s_i y_i^T)\, H_i\, (I - \rho_i y_i s_i^T)
              + \rho_i s_i s_i^T, \qquad
    \rho_i = \frac{1}{y_i^T s_i}, \qquad
    \gamma_k = \frac{s_{k-1}^T y_{k-1}}{y_{k-1}^T y_{k-1}},

applied to the gradient by the two-loop recursion (Nocedal & Wright,
Algorithm 7.4) in :math:`O(mn)`, without forming :math:`H_k`.  The step
:math:`x_{k+1} = x_k + \alpha_k d_k` takes the first :math:`\alpha_k`
(trying 1 first) that the line search of Moré & Thuente finds to satisfy the
strong Wolfe conditions

.. math::

    f(x_k + \alpha d_k) \le f(x_k) + c_1 \alpha \nabla f(x_k)^T d_k,
    \qquad
    |\nabla f(x_k + \alpha d_k)^T d_k| \le c_2 |\nabla f(x_k)^T d_k|,

so :math:`y_k^T s_k > 0` and :math:`H_{k+1}` stays positive definite.  One
iteration usually costs one value-and-gradient evaluation.

With bounds the loop is L-BFGS-B (Byrd, Lu, Nocedal & Zhu 1995; version 3.0
with Morales & Nocedal's 2011 projection): a generalized Cauchy point along
the projected steepest-descent path, a subspace minimisation over the
variables free there, and this line search on the feasible segment, with the
compact limited-memory form (:mod:`fastopt.solvers._lbfgsb`); convergence is
tested on the projected gradient.  See :func:`_lbfgsb_loop`.
"""

import math
from typing import NamedTuple

import numpy as np

from .. import _jit
from .._status import (
    FTOL,
    GRADIENT_SHAPE,
    LINESEARCH,
    MAXFEV,
    MAXITER,
    NONFINITE_F,
    NONFINITE_G,
    SUCCESS,
)
from .._user import as_scalar
from ..drivers._checks import project, projected_inf_norm
from ._lazy_loop import LazyLoop, borrowing_dual, ieee_division, use_compiled
from ._lbfgsb import (
    INT0,
    SUBSPACE_REDUCED,
    V_D,
    V_G,
    V_LB,
    V_S,
    V_TB,
    V_UB,
    V_X,
    V_XT,
    V_Y,
    V_Z,
    add_pair,
    bounds_kind,
    cauchy_point,
    form_middle,
    max_feasible_step,
    reduced_subspace_point,
    subspace_point,
    work_arrays,
)
from ._run import RUNNING, drive, nonfinite_fg, result, start_fg, start_point
from ._vectors import (
    all_finite,
    copy_into,
    dot,
    inf_norm,
    lincomb_into,
)

ALIASES = ("l-bfgs", "l-bfgs-b")
#: L-BFGS-B's iteration limit (scipy's default ``maxiter``)
DEFAULT_MAXITER = 15000
#: the options ``minimize(tol=...)`` sets, as scipy's L-BFGS-B
TOL_OPTIONS = ("gtol", "ftol")
#: L-BFGS builds its curvature from gradient differences: a ``hessp`` is not
#: used (``minimize`` warns, as scipy does)
USES_HESSP = False

#: machine epsilon: the curvature test that skips an update (see the loop)
_EPS = float(np.finfo(np.float64).eps)
#: f values this close (relative) count as equal where a line-search trial
#: point meets gtol: scikit-learn's L-BFGS ftol, 64 eps, for the same
#: reason (a sum over many samples carries that much rounding)
_F_ROUNDING = 64 * _EPS

#: largest step the line search may try (L-BFGS-B's ``big`` without bounds)
_STPMAX = 1e10

#: Moré-Thuente's relative tolerance on the width of the bracket (L-BFGS-B's)
_XTOL = 0.1


class Options(NamedTuple):
    r"""Options of ``method="lbfgs"``.

    ``maxiter`` (iterations, default 15000 as L-BFGS-B's) and ``gtol``
    (default 1e-5: the inf-norm of the gradient, of the *projected* gradient
    with bounds) are :func:`fastopt.minimize`'s common options, as for every
    method; ``minimize(tol=t)`` sets both ``gtol`` and ``ftol`` to ``t``, as
    scipy's L-BFGS-B.

    Attributes
    ----------
    maxcor : int
        The memory :math:`m`: how many :math:`(s, y)` pairs the inverse
        Hessian is built from (scipy's name). Default 10.
    ftol : float
        Stop (FTOL) when an accepted step has
        :math:`f_k - f_{k+1} \le \mathrm{ftol}\cdot\max(|f_k|, |f_{k+1}|, 1)`,
        scipy L-BFGS-B's test; 0 disables it. Default
        2.220446049250313e-09, scipy's exactly (``factr = 1e7`` times
        machine epsilon; it was 2.2e-9, 1% below scipy's).
    maxfun : int or None
        Maximum number of evaluations of ``fg`` (scipy's name and default,
        15000; None: no limit beyond ``maxiter``); a line search stops when
        it is reached.
    maxfev : int or None
        The same limit under fastopt's older name (the smaller one applies).
    maxls : int
        Maximum number of evaluations in one line search (scipy's name).
        Default 20.
    c1 : float or None
        Sufficient-decrease constant of the Wolfe conditions,
        :math:`0 < c_1 < c_2`. Default None: 1e-4 without bounds (Nocedal &
        Wright), L-BFGS-B's 1e-3 with bounds.
    c2 : float
        Curvature constant of the strong Wolfe conditions,
        :math:`c_1 < c_2 < 1`. Default 0.9.
    """

    maxcor: int = 10
    ftol: float = 2.220446049250313e-09
    maxfev: int | None = None
    maxls: int = 20
    c1: float | None = None
    c2: float = 0.9
    maxfun: int | None = 15000


def _is_int(v):
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


#: the last options :func:`run` validated: Options are immutable, and
#: ``minimize`` validates them when it builds them, then calls :func:`run`,
#: which checks them as every solver's ``run`` does; a repeated call
#: (``minimize`` in a loop) passes the same object, checked once
_VALIDATED = None


def validate(opts):
    """Raise ValueError for an invalid option, naming the value."""
    if not (_is_int(opts.maxcor) and opts.maxcor >= 1):
        raise ValueError(f"Invalid maxcor value: {opts.maxcor} (need an integer >= 1)")
    if not (isinstance(opts.ftol, int | float | np.floating) and opts.ftol >= 0
            and math.isfinite(opts.ftol)):  # fmt: skip
        raise ValueError(f"Invalid ftol value: {opts.ftol}")
    if opts.maxfev is not None and not (_is_int(opts.maxfev) and opts.maxfev >= 1):
        raise ValueError(f"Invalid maxfev value: {opts.maxfev}")
    if not (_is_int(opts.maxls) and opts.maxls >= 1):
        raise ValueError(f"Invalid maxls value: {opts.maxls} (need an integer >= 1)")
    if opts.maxfun is not None and not (_is_int(opts.maxfun) and opts.maxfun >= 1):
        raise ValueError(f"Invalid maxfun value: {opts.maxfun}")
    c1 = 1e-4 if opts.c1 is None else opts.c1
    if not (isinstance(c1, int | float | np.floating) and 0 < c1 < 1):
        raise ValueError(f"Invalid c1 value: {opts.c1} (need 0 < c1 < 1)")
    if not (isinstance(opts.c2, int | float | np.floating) and c1 < opts.c2 < 1):
        raise ValueError(f"Invalid c2 value: {opts.c2} (need c1 < c2 < 1)")


# --------------------------------------------------------------------------
# The two-loop recursion and the memory update: cached kernels, so the
# Python loop pays one call each and both loops run the same machine code.


@_jit.borrowing_kernel
def _two_loop(g, S, Y, rho, alpha, head, count, gamma, d):
    r"""``d = -H g`` by the two-loop recursion; returns :math:`d^T g`.

    Nocedal & Wright, Algorithm 7.4, started from :math:`q = -g` (the
    recursion is linear, so this gives :math:`-Hg` directly).  The pairs
    live in the rows of ``S``, ``Y`` (a ring of ``m + 1`` rows): the
    ``count`` most recent ones are the rows before ``head``.

    The dot products call the cached :func:`~fastopt.solvers._vectors.dot`
    (the same operations as its inlined copy): three inlined copies of its
    unrolled loop doubled this kernel's first compile (0.73 s to 0.35 s).
    """
    m1 = S.shape[0]
    n = g.shape[0]
    for i in range(n):
        d[i] = -g[i]
    j = head
    for _ in range(count):  # newest to oldest
        j = j - 1 if j > 0 else m1 - 1
        a = rho[j] * dot(S[j], d)
        alpha[j] = a
        for i in range(n):
            d[i] -= a * Y[j, i]
    for i in range(n):
        d[i] *= gamma
    for _ in range(count):  # oldest to newest
        b = rho[j] * dot(Y[j], d)
        c = alpha[j] - b
        for i in range(n):
            d[i] += c * S[j, i]
        j = j + 1 if j < m1 - 1 else 0
    return dot(d, g)


@_jit.borrowing_kernel
def _accept(x, xt, g, g_new, s, y):
    r"""Move to ``xt``: ``s = xt - x``, ``y = g_new - g``, ``x = xt``, ``g = g_new``.

    One pass for the whole bookkeeping.  Returns :math:`s^T y`,
    :math:`y^T y` and :math:`\|g_{new}\|_\infty`.
    """
    sy = 0.0
    yy = 0.0
    gmax = 0.0
    for i in range(x.shape[0]):
        si = xt[i] - x[i]
        yi = g_new[i] - g[i]
        s[i] = si
        y[i] = yi
        sy += si * yi
        yy += yi * yi
        x[i] = xt[i]
        g[i] = g_new[i]
        a = abs(g_new[i])
        if a > gmax:
            gmax = a
    return sy, yy, gmax


# --------------------------------------------------------------------------
# Moré-Thuente line search (MINPACK-2 dcsrch/dcstep) in reverse
# communication: the loop evaluates, these functions choose the next step.
# Scalar code, dual (see _lazy_loop.dual): the Python loop runs them as
# Python and a compiled loop compiles them in.  As cached kernels they took
# about 1 s of a cold process's first lbfgs call to compile (numba types
# this branchy scalar code slowly), for a few microseconds of work per
# line-search step; Python floats are IEEE doubles, and ieee_division gives
# a Python call the compiled code's x/0, so both loops get the same bits.

#: line-search tasks (MINPACK-2's ``task`` strings)
_FG, _CONV, _WARN, _ERROR = 1, 2, 3, 4

#: slots of the line-search state array
(_STAGE, _BRACKT, _GINIT, _GTEST, _GX, _GY, _FINIT, _FX, _FY, _STX, _STY,
 _STMIN, _STMAX, _WIDTH, _WIDTH1, _STPMAX_AT) = range(16)  # fmt: skip
_LS_SIZE = 16


@ieee_division
def _cubic_gamma(theta, a, b, s):
    """``s * sqrt((theta/s)^2 - (a/s)(b/s))``, the root clipped at 0.

    MINPACK takes the root without the clip in three of its four cases,
    where it is positive in exact arithmetic; rounding could make it a
    tiny negative number, and the step NaN.
    """
    ts = theta / s
    return s * math.sqrt(max(0.0, ts * ts - (a / s) * (b / s)))


@ieee_division
def _dcstep(stx, fx, dx, sty, fy, dy, stp, fp, dp, brackt, stpmin, stpmax):
    """MINPACK-2 ``dcstep``: a safeguarded cubic/quadratic step; updates the bracket.

    ``(stx, fx, dx)``: the best step so far, its value and derivative;
    ``(sty, fy, dy)``: the other end of the bracket; ``(stp, fp, dp)``: the
    step just evaluated.  Returns the updated ``stx, fx, dx, sty, fy, dy``,
    the new trial step and ``brackt`` (Moré & Thuente 1994, section 4).
    """
    if dp == 0.0 or dx == 0.0:
        sgnd = 0.0
    else:
        sgnd = math.copysign(1.0, dp) * math.copysign(1.0, dx)
    if fp > fx:
        # Case 1: a higher value; the minimum is bracketed.  The cubic step
        # if it is closer to stx than the quadratic one, else their mean.
        theta = 3.0 * ((fx - fp) / (stp - stx)) + dx + dp
        s = max(abs(theta), abs(dx), abs(dp))
        gamma = _cubic_gamma(theta, dx, dp, s)
        if stp < stx:
            gamma = -gamma
        p = (gamma - dx) + theta
        q = ((gamma - dx) + gamma) + dp
        stpc = stx + (p / q) * (stp - stx)
        stpq = stx + ((dx / ((fx - fp) / (stp - stx) + dx)) / 2.0) * (stp - stx)
        if abs(stpc - stx) <= abs(stpq - stx):
            stpf = stpc
        else:
            stpf = stpc + (stpq - stpc) / 2.0
        brackt = True
    elif sgnd < 0.0:
        # Case 2: a lower value, derivatives of opposite signs; bracketed.
        # The cubic step if it is farther from stp than the secant step.
        theta = 3.0 * ((fx - fp) / (stp - stx)) + dx + dp
        s = max(abs(theta), abs(dx), abs(dp))
        gamma = _cubic_gamma(theta, dx, dp, s)
        if stp > stx:
            gamma = -gamma
        p = (gamma - dp) + theta
        q = ((gamma - dp) + gamma) + dx
        stpc = stp + (p / q) * (stx - stp)
        stpq = stp + (dp / (dp - dx)) * (stx - stp)
        stpf = stpc if abs(stpc - stp) > abs(stpq - stp) else stpq
        brackt = True
    elif abs(dp) < abs(dx):
        # Case 3: a lower value, derivatives of the same sign, |f'|
        # decreasing.  The cubic step only if the cubic tends to infinity
        # in the direction of the step or its minimum lies beyond stp.
        theta = 3.0 * ((fx - fp) / (stp - stx)) + dx + dp
        s = max(abs(theta), abs(dx), abs(dp))
        gamma = _cubic_gamma(theta, dx, dp, s)
        if stp > stx:
            gamma = -gamma
        p = (gamma - dp) + theta
        q = (gamma + (dx - dp)) + gamma
        r = p / q
        if r < 0.0 and gamma != 0.0:
            stpc = stp + r * (stx - stp)
        elif stp > stx:
            stpc = stpmax
        else:
            stpc = stpmin
        stpq = stp + (dp / (dp - dx)) * (stx - stp)
        if brackt:
            stpf = stpc if abs(stpc - stp) < abs(stpq - stp) else stpq
            if stp > stx:
                stpf = min(stp + 0.66 * (sty - stp), stpf)
            else:
                stpf = max(stp + 0.66 * (sty - stp), stpf)
        else:
            stpf = stpc if abs(stpc - stp) > abs(stpq - stp) else stpq
            stpf = max(stpmin, min(stpf, stpmax))
    else:
        # Case 4: a lower value, derivatives of the same sign, |f'| not
        # decreasing: the cubic step if bracketed, else stpmin or stpmax.
        if brackt:
            theta = 3.0 * ((fp - fy) / (sty - stp)) + dy + dp
            s = max(abs(theta), abs(dy), abs(dp))
            gamma = _cubic_gamma(theta, dy, dp, s)
            if stp > sty:
                gamma = -gamma
            p = (gamma - dp) + theta
            q = ((gamma - dp) + gamma) + dy
            stpf = stp + (p / q) * (sty - stp)
        elif stp > stx:
            stpf = stpmax
        else:
            stpf = stpmin
    # Update the interval that contains a minimizer.
    if fp > fx:
        sty = stp
        fy = fp
        dy = dp
    else:
        if sgnd < 0.0:
            sty = stx
            fy = fx
            dy = dx
        stx = stp
        fx = fp
        dx = dp
    return stx, fx, dx, sty, fy, dy, stpf, brackt


@borrowing_dual
def _search_start(ls, f0, g0, stp, c1, stpmax):
    """Start a line search: MINPACK-2 ``dcsrch`` with ``task = 'START'``.

    ``f0``, ``g0``: the value and the (negative) directional derivative at
    step 0; ``stp``: the first trial step (in ``(0, stpmax]``); ``stpmax``:
    the largest step (:data:`_STPMAX` without bounds, the step to the
    nearest bound with them).
    """
    ls[_STAGE] = 1.0
    ls[_BRACKT] = 0.0
    ls[_FINIT] = f0
    ls[_GINIT] = g0
    ls[_GTEST] = c1 * g0
    ls[_STPMAX_AT] = stpmax
    ls[_WIDTH] = stpmax
    ls[_WIDTH1] = stpmax / 0.5
    ls[_STX] = 0.0
    ls[_FX] = f0
    ls[_GX] = g0
    ls[_STY] = 0.0
    ls[_FY] = f0
    ls[_GY] = g0
    ls[_STMIN] = 0.0
    ls[_STMAX] = stp + 4.0 * stp


@borrowing_dual
def _search_step(ls, stp, f, g, c2):
    """One call of MINPACK-2 ``dcsrch`` with the value ``f`` and slope ``g`` at ``stp``.

    Returns ``(stp, task)``: ``_CONV`` when ``stp`` satisfies the strong
    Wolfe conditions, ``_WARN`` when no further progress is possible
    (rounding, the bracket below ``_XTOL``, or a step at a bound), else
    ``_FG`` and the next step to evaluate.  The search state is ``ls``.
    """
    finit = ls[_FINIT]
    ginit = ls[_GINIT]
    gtest = ls[_GTEST]
    brackt = ls[_BRACKT] != 0.0
    stmin = ls[_STMIN]
    stmax = ls[_STMAX]
    stage = ls[_STAGE]
    stpmax = ls[_STPMAX_AT]
    ftest = finit + stp * gtest
    if stage == 1.0 and f <= ftest and g >= 0.0:
        stage = 2.0
    # Convergence first (MINPACK tests it last and lets it override a warning).
    if f <= ftest and abs(g) <= c2 * -ginit:
        return stp, _CONV
    if brackt and (stp <= stmin or stp >= stmax):
        return stp, _WARN  # rounding errors prevent progress
    if brackt and stmax - stmin <= _XTOL * stmax:
        return stp, _WARN  # the bracket is below xtol
    if stp == stpmax and f <= ftest and g <= gtest:
        return stp, _WARN
    if stp == 0.0 and (f > ftest or g >= gtest):
        return stp, _WARN
    stx = ls[_STX]
    sty = ls[_STY]
    if stage == 1.0 and f <= ls[_FX] and f > ftest:
        # Stage 1 with a lower value but not a sufficient decrease: step on
        # the modified function psi(a) = f(a) - f(0) - c1 a f'(0).
        stx, fxm, gxm, sty, fym, gym, stp, brackt = _dcstep(
            stx, ls[_FX] - stx * gtest, ls[_GX] - gtest,
            sty, ls[_FY] - sty * gtest, ls[_GY] - gtest,
            stp, f - stp * gtest, g - gtest, brackt, stmin, stmax,
        )  # fmt: skip
        ls[_FX] = fxm + stx * gtest
        ls[_FY] = fym + sty * gtest
        ls[_GX] = gxm + gtest
        ls[_GY] = gym + gtest
    else:
        stx, fx, gx, sty, fy, gy, stp, brackt = _dcstep(
            stx, ls[_FX], ls[_GX], sty, ls[_FY], ls[_GY],
            stp, f, g, brackt, stmin, stmax,
        )  # fmt: skip
        ls[_FX] = fx
        ls[_FY] = fy
        ls[_GX] = gx
        ls[_GY] = gy
    if brackt:
        # Bisect when the bracket did not shrink enough over two steps.
        if abs(sty - stx) >= 0.66 * ls[_WIDTH1]:
            stp = stx + 0.5 * (sty - stx)
        ls[_WIDTH1] = ls[_WIDTH]
        ls[_WIDTH] = abs(sty - stx)
        stmin = min(stx, sty)
        stmax = max(stx, sty)
    else:
        stmin = stp + 1.1 * (stp - stx)
        stmax = stp + 4.0 * (stp - stx)
    stp = max(0.0, min(stp, stpmax))
    if brackt and (stp <= stmin or stp >= stmax or stmax - stmin <= _XTOL * stmax):
        # No further progress is possible: try the best step found.
        stp = stx
    ls[_STAGE] = stage
    ls[_BRACKT] = 1.0 if brackt else 0.0
    ls[_STX] = stx
    ls[_STY] = sty
    ls[_STMIN] = stmin
    ls[_STMAX] = stmax
    return stp, _FG


# --------------------------------------------------------------------------
# The loop


def _evaluate(fg, xt, args, g_new):
    """``(f, True)``: ``fg`` at ``xt``, its gradient copied into ``g_new``; ``(nan, False)``
    when the gradient's length is not ``xt``'s (nothing is read from it then).

    The L-BFGS loops call the user's ``@njit`` ``fun`` of ``jac=True``
    directly (:func:`_unchecked`), not through the compiled glue that checks
    its gradient's length (:mod:`fastopt._user`): the check is here, and a
    wrong length is the run's status (:data:`~fastopt._status.GRADIENT_SHAPE`;
    :func:`run` raises ValueError for it, as the glue does).  A function of
    its own, compiled with the loop's ``fg`` built in (``specialise``), so
    that the gradient array ``fg`` returns is released here: the loop then
    holds no array of its own and compiles without reference counting
    (``LazyLoop(borrow=True)``), where numba counted each of its array
    arguments in and out at every run's start and end (thirty for L-BFGS-B).
    That, and the glue's own counting around each evaluation, were about
    12% of a bounded 3-variable fit in :func:`fastopt.minimize_many`.
    """
    f, g = fg(xt, *args)
    n = xt.shape[0]
    if g.shape[0] != n:
        return math.nan, False
    for i in range(n):
        g_new[i] = g[i]
    return as_scalar(f), True


def _unchecked(fg):
    """The user's ``@njit`` ``fun`` if ``fg`` is the glue of ``jac=True`` around it, else ``fg``.

    The L-BFGS loops check the gradient's length themselves and convert the
    value with ``as_scalar``, as the glue does (:func:`_evaluate`).
    """
    glue = getattr(fg, "fastopt_glue", None)
    if glue is not None and glue[0] == "fg_true":
        return glue[1]
    return fg


def _lbfgs_loop(
    fg, args, x, g, d, xt, gt, S, Y, rho, alpha, ls, fs, ns,
    nsteps, maxiter, maxfev, gtol, ftol, maxls, c1, c2,
):  # fmt: skip
    """Run L-BFGS iterations until ``nsteps`` more are accepted or a stop test.

    The state comes in and goes out through ``x, g`` (iterate and gradient),
    the memory ``S, Y, rho`` (``m + 1`` rows: a ring whose row ``head`` is
    always free, so a step can write its pair there before the curvature
    test decides whether to keep it) and the small arrays ``fs`` (floats)
    and ``ns`` (integers), all updated in place, so a caller can resume
    after any accepted step.  ``d`` (direction), ``xt`` (trial point),
    ``gt`` (its gradient, :func:`_evaluate`), ``alpha`` (two-loop
    coefficients) and ``ls`` (line-search state) are work buffers.  Stop
    tests run at the top of an iteration, so a chunk of one step always ends
    with ``RUNNING`` and the caller sees (and calls back on) every iterate.

    ``fs = [f, gamma]``: f at x and the initial scaling
    :math:`\\gamma = s^T y / y^T y` of the newest pair (0 before the first).
    ``ns = [nit, nfev, njev, head, count, pending]``: accepted steps,
    evaluations, the ring's free row and number of pairs, and a stop status
    found after an accepted step and reported at the next iteration.
    """
    m1 = S.shape[0]
    f = float(fs[0])
    gamma = float(fs[1])
    nit = int(ns[0])
    nfev = int(ns[1])
    njev = int(ns[2])
    head = int(ns[3])
    count = int(ns[4])
    pending = int(ns[5])
    stop_at = nit + nsteps
    status = RUNNING
    gnorm = inf_norm(g)
    while True:
        if nit >= stop_at:
            break
        if gnorm <= gtol:
            status = SUCCESS
            break
        if pending != RUNNING:
            status = pending
            break
        if nit >= maxiter:
            status = MAXITER
            break
        if nfev >= maxfev:
            status = MAXFEV
            break
        dg = 0.0
        if count > 0:
            dg = _two_loop(g, S, Y, rho, alpha, head, count, gamma, d)
            if not (dg < 0.0 and math.isfinite(dg)):
                # Rounding made d uphill (or it overflowed): forget the
                # pairs and restart along -g.
                count = 0
        if count == 0:
            # Steepest descent, first step 1/|g| (scipy's L-BFGS-B scales its
            # first step so).  After a restart too: L-BFGS-B's unit step
            # along -g, and a step along -gamma g (the last pair's scale),
            # both failed on Jennrich-Sampson, whose curvature changes by
            # orders of magnitude; 1/|g| solves it.
            # d = -g through the two-loop kernel with no pairs and gamma 1
            # (exact: -g[i] * 1.0): one kernel less to compile on a first
            # Python-driven call (scale_into, ~0.06 s of a cold start)
            _two_loop(g, S, Y, rho, alpha, head, 0, 1.0, d)
            dg = -dot(g, g)
            stp = min(1.0 / math.sqrt(-dg), _STPMAX)
        else:
            stp = 1.0
        # Moré-Thuente line search for the strong Wolfe conditions.
        _search_start(ls, f, dg, stp, c1, _STPMAX)
        task = _FG
        nls = 0
        while True:
            if nls >= maxls:
                task = _WARN
                break
            if nfev >= maxfev:
                status = MAXFEV
                break
            lincomb_into(xt, 1.0, x, stp, d)
            f_new, shape_ok = _evaluate(fg, xt, args, gt)
            g_new = gt
            nfev += 1
            njev += 1
            nls += 1
            if not shape_ok:
                status = GRADIENT_SHAPE
                break
            if not math.isfinite(f_new):
                status = NONFINITE_F
                break
            # max |g_new| is inf or NaN exactly when g_new has a non-finite
            # entry: one pass for both tests, and one kernel (all_finite)
            # less to compile on a first Python-driven call
            gnorm_new = inf_norm(g_new)
            if not math.isfinite(gnorm_new):
                status = NONFINITE_G
                break
            if f_new <= f + _F_ROUNDING * abs(f) and gnorm_new <= gtol:
                # The gradient test holds at a trial point no worse than x up
                # to rounding: take it and stop.  Near a tight gtol the values
                # differ only by rounding, and the Wolfe search missed such a
                # point and failed after maxls evaluations (on the 1e5 x 100
                # logistic regression at gtol 1e-10: |g| 2.9e-12 at f + 42 eps
                # |f|, then 33 evaluations wasted).
                task = _CONV
                break
            stp, task = _search_step(ls, stp, f_new, dot(g_new, d), c2)
            if task != _FG:
                break
        if status != RUNNING:
            # x, f, g stay at the last accepted (finite) iterate.
            break
        if task != _CONV:
            # L-BFGS-B's recovery: drop the memory, retry along -g; unless
            # the decrease to expect from a quasi-Newton step, gamma |g|^2,
            # is below the rounding of f, where no line search can tell
            # steps apart (a noise floor that a tight gtol puts out of
            # reach: the retry would only spend up to maxls evaluations).
            if count > 0 and gamma * dot(g, g) > _EPS * abs(f):
                count = 0
                continue
            status = LINESEARCH
            break
        sy, yy, gnorm = _accept(x, xt, g, g_new, S[head], Y[head])
        # Keep the pair only if its curvature is safely positive: the strong
        # Wolfe conditions give s'y >= (1 - c2)|g'd| alpha > 0 in exact
        # arithmetic, but rounding near the minimum can leave s'y ~ 0, and
        # 1/s'y would wreck H.  A skipped pair leaves the memory unchanged
        # (L-BFGS-B skips on a like test, s'y <= eps (-g's)).
        if sy > _EPS * yy:
            rho[head] = 1.0 / sy
            gamma = sy / yy
            head = head + 1 if head < m1 - 1 else 0
            if count < m1 - 1:
                count += 1
        nit += 1
        f_old = f
        f = float(f_new)
        if ftol > 0.0 and f_old - f <= ftol * max(abs(f_old), abs(f), 1.0):
            pending = FTOL
    fs[0] = f
    fs[1] = gamma
    ns[0] = nit
    ns[1] = nfev
    ns[2] = njev
    ns[3] = head
    ns[4] = count
    ns[5] = pending
    return status


_LOOP = LazyLoop(_lbfgs_loop, 1, cache=True, specialise={"_evaluate": 1}, borrow=True)


def _lbfgsb_loop(
    fg, args, x_io, g_io, lb_in, ub_in, V, I, P, MM, KK, M2, ls, fs, ns,
    nsteps, maxiter, maxfev, gtol, ftol, maxls, c1, c2, boxed,
):  # fmt: skip
    """Run L-BFGS-B iterations until ``nsteps`` more are accepted or a stop test.

    The bounded loop (Byrd, Lu, Nocedal & Zhu 1995, as L-BFGS-B 3.0's
    ``mainlb``): generalized Cauchy point, subspace minimisation with
    Morales & Nocedal's projection, and a Moré-Thuente line search on the
    feasible segment from ``x`` to the subspace point ``z``.  State in and
    out as :func:`_lbfgs_loop`'s: ``x, g``, the memory ``S, Y`` (rows oldest
    first) with ``SY = S Y'`` and ``SS = S S'``, ``fs = [f, theta]`` and
    ``ns = [nit, nfev, njev, count, pending]``; the other arrays are work
    buffers (see :func:`run`).

    The memory and the work arrays come bundled by shape
    (:data:`fastopt.solvers._lbfgsb.V_ROWS`: ``V, I, P, MM, KK, M2``), so
    that the kernels called every iteration take six arrays each, not
    twenty.  ``x_io, g_io`` (the iterate and its gradient) and the bounds
    are copied into ``V``'s rows on entry, where the kernels read them, and
    ``x, g`` back on exit: the loop works on the rows.
    """
    x, g, lb, ub = V[V_X], V[V_G], V[V_LB], V[V_UB]
    copy_into(x, x_io)
    copy_into(g, g_io)
    copy_into(lb, lb_in)
    copy_into(ub, ub_in)
    d, xt, z, s, y, tb = V[V_D], V[V_XT], V[V_Z], V[V_S], V[V_Y], V[V_TB]
    m = P.shape[1]  # the memory's size
    f = float(fs[0])
    theta = float(fs[1])
    nit = int(ns[0])
    nfev = int(ns[1])
    njev = int(ns[2])
    col = int(ns[3])
    pending = int(ns[4])
    # rows of form_middle's theta-free part that are current (none on entry:
    # a resumed run recomputes them, to the same bits); INT0, not 0: see it
    nt = INT0
    # a trial point's gradient (_evaluate) goes to tb, the Cauchy point's
    # breakpoints, which are free outside cauchy_point
    g_new = tb
    stop_at = nit + nsteps
    status = RUNNING
    pgnorm = projected_inf_norm(x, g, lb, ub)
    while True:
        if nit >= stop_at:
            break
        if pgnorm <= gtol:
            status = SUCCESS
            break
        if pending != RUNNING:
            status = pending
            break
        if nit >= maxiter:
            status = MAXITER
            break
        if nfev >= maxfev:
            status = MAXFEV
            break
        ok = True
        if col > 0:
            ok = form_middle(MM, KK, M2, col, theta, nt)
            nt = col
        if ok:
            ok = cauchy_point(V, I, P, MM, KK, M2, col, theta)
        if ok and subspace_point(V, I, P, MM, KK, M2, col, theta) == SUBSPACE_REDUCED:
            ok = reduced_subspace_point(V, I, P, MM, KK, M2, col, theta)
        gd = 0.0
        if ok:
            lincomb_into(d, 1.0, z, -1.0, x)
            gd = dot(g, d)
        if not (ok and gd < 0.0):
            # A singular factor, or no descent (rounding): L-BFGS-B drops
            # the memory and starts again from the projected gradient.
            if col > 0:
                col = 0
                nt = 0
                theta = 1.0
                continue
            status = LINESEARCH
            break
        # The largest step that stays in the box (L-BFGS-B's lnsrlb); the
        # first iteration steps at most to the Cauchy point.
        stpmx = _STPMAX
        if nit == 0:
            stpmx = 1.0
        else:
            stpmx = max_feasible_step(V, stpmx)
        stp = 1.0
        if nit == 0 and not boxed:
            stp = min(1.0 / math.sqrt(dot(d, d)), stpmx)
        stp = min(stp, stpmx)
        _search_start(ls, f, gd, stp, c1, stpmx)
        task = _FG
        nls = 0
        f_new = f
        while True:
            if nls >= maxls:
                task = _ERROR
                break
            if nfev >= maxfev:
                status = MAXFEV
                break
            if stp == 1.0:
                copy_into(xt, z)
            else:
                lincomb_into(xt, 1.0, x, stp, d)
                project(xt, lb, ub)  # a trial step's rounding can cross a bound
            f_new, shape_ok = _evaluate(fg, xt, args, g_new)
            nfev += 1
            njev += 1
            nls += 1
            if not shape_ok:
                status = GRADIENT_SHAPE
                break
            if not math.isfinite(f_new):
                status = NONFINITE_F
                break
            if not all_finite(g_new):
                status = NONFINITE_G
                break
            stp, task = _search_step(ls, stp, f_new, dot(g_new, d), c2)
            if task != _FG:
                break
        if status != RUNNING:
            break
        if task == _ERROR:
            # L-BFGS-B: refresh the memory and retry; without one, stop.
            if col > 0:
                col = 0
                nt = 0
                theta = 1.0
                continue
            status = LINESEARCH
            break
        # CONV or WARN (a step to the bound, or rounding): L-BFGS-B takes it.
        sy, yy, _ = _accept(x, xt, g, g_new, s, y)
        pgnorm = projected_inf_norm(x, g, lb, ub)
        # The update is skipped unless s'y > eps (-g's) (L-BFGS-B's test).
        if sy > _EPS * (-gd * stp):
            if col == m:
                nt = 0  # the oldest pair goes: every row of form_middle's C changes
            col = add_pair(P, MM, V, col)
            theta = yy / sy
        nit += 1
        f_old = f
        f = float(f_new)
        if ftol > 0.0 and f_old - f <= ftol * max(abs(f_old), abs(f), 1.0):
            pending = FTOL
    fs[0] = f
    fs[1] = theta
    ns[0] = nit
    ns[1] = nfev
    ns[2] = njev
    ns[3] = col
    ns[4] = pending
    copy_into(x_io, x)
    copy_into(g_io, g)
    return status


_BLOOP = LazyLoop(_lbfgsb_loop, 1, cache=True, specialise={"_evaluate": 1}, borrow=True)


def _float64_gradient(fg):
    """``fg`` with its gradient as a float64 array.

    :func:`fastopt.minimize` returns a float32 ``x0``'s gradients in float32
    (Python mode); the loop computes in float64 and its kernels must not
    meet mixed dtypes.
    """

    def fg64(x, *args):
        f, g = fg(x, *args)
        return f, np.asarray(g, dtype=np.float64)

    return fg64


def run(obj, opts):
    r"""Minimize ``obj`` by L-BFGS.

    Parameters
    ----------
    obj : fastopt._objective.Objective
        The problem (``obj.hessp`` is not used).
    opts : Options
        Method options (see :class:`Options`).

    Returns
    -------
    dict
        ``x, fun, jac, status, nit, nfev, njev, nhev`` (and ``allvecs`` with
        ``return_all``); ``nhev`` is always 0.  ``nit`` counts accepted
        steps; every line-search evaluation counts in ``nfev``/``njev``.

    Notes
    -----
    Iteration :math:`k` (Nocedal & Wright, Algorithms 7.4 and 7.5):

    1. :math:`d_k = -H_k g_k` by the two-loop recursion over the last
       :math:`m` = ``maxcor`` pairs, :math:`H_k^0 = \gamma_k I`,
       :math:`\gamma_k = s_{k-1}^T y_{k-1} / y_{k-1}^T y_{k-1}`; with no
       pairs (the start, or after a restart) :math:`d_k = -g_k` and the
       first trial step is :math:`1/\|g_k\|_2` (as scipy's L-BFGS-B at the
       start), else 1;
    2. a Moré-Thuente line search (MINPACK-2 ``dcsrch``/``dcstep``, with
       ``c1``, ``c2`` and L-BFGS-B's bracket tolerance 0.1, at most
       ``maxls`` evaluations) for a step with the strong Wolfe conditions;
    3. :math:`x_{k+1} = x_k + \alpha_k d_k`; keep
       :math:`(s_k, y_k)`, dropping the oldest pair beyond :math:`m`, only
       if :math:`s_k^T y_k > \epsilon\, y_k^T y_k` (:math:`\epsilon`
       machine epsilon; else the update is skipped).

    If the line search fails (no strong Wolfe step within ``maxls``
    evaluations, or rounding stops it), the pairs are dropped and the
    iteration is retried along :math:`-g_k` with a first step
    :math:`1/\|g_k\|_2`, as L-BFGS-B does (with a unit step); if that fails
    too, or if the decrease to expect from a quasi-Newton step,
    :math:`\gamma\|g_k\|^2`, is below the rounding error of f (a ``gtol``
    out of reach), the run stops (status 9, LINESEARCH) at the last iterate.
    A direction with :math:`d_k^T g_k \ge 0` (rounding) also restarts along
    :math:`-g_k`.  The run stops when :math:`\|g\|_\infty \le` ``gtol``
    (SUCCESS), on the relative reduction test ``ftol`` (FTOL), after
    ``maxiter`` accepted steps or ``maxfev`` evaluations, and on a
    non-finite value or gradient at a trial point, returning the last
    accepted iterate (whose values are finite).

    With ``obj.compiled`` the loop runs in nopython mode; with a callback or
    ``return_all`` it runs one accepted step per call into compiled code.
    The iterates are the same in both modes.

    References
    ----------
    .. [1] D. C. Liu and J. Nocedal, "On the limited memory BFGS method for
       large scale optimization", Mathematical Programming 45:503-528, 1989.
    .. [2] J. Nocedal and S. J. Wright, "Numerical Optimization", 2nd ed.,
       Springer, 2006, chapters 3 and 7.
    .. [3] J. J. Moré and D. J. Thuente, "Line search algorithms with
       guaranteed sufficient decrease", ACM Trans. Math. Softw.
       20(3):286-307, 1994.
    """
    global _VALIDATED
    if opts is not _VALIDATED:  # (a repeated call passes the options it validated)
        validate(opts)
        _VALIDATED = opts
    maxfev = _max_evaluations(opts)
    args = tuple(obj.args)
    x = start_point(obj)
    x0 = x.copy()
    f, g, reused = start_fg(obj, x, args)
    bad = nonfinite_fg(f, g)
    if bad:
        return result(x, f, g, bad, 0, 1, 1, 0, [x0] if obj.return_all else None, reused)

    compiled = use_compiled(obj)
    fg = obj.fg
    if not compiled and obj.x0.dtype != np.float64:
        fg = _float64_gradient(fg)
    lb, ub, boxed = _finite_bounds(obj)
    if lb is not None:
        return _run_bounded(obj, opts, fg, compiled, args, x, x0, f, g, lb, ub, boxed, maxfev,
                            reused)  # fmt: skip
    loop, fns = _LOOP.select(compiled, _unchecked(fg) if compiled else fg)

    n = x.shape[0]
    m1 = int(opts.maxcor) + 1
    S = np.zeros((m1, n))
    Y = np.zeros((m1, n))
    rho = np.zeros(m1)
    alpha = np.zeros(m1)
    d = np.empty(n)
    xt = np.empty(n)
    gt = np.empty(n)
    ls = np.zeros(_LS_SIZE)
    fs = np.array([f, 0.0])
    ns = np.array([0, 1, 1, 0, 0, RUNNING], dtype=np.int64)
    maxiter, gtol = int(obj.maxiter), float(obj.gtol)
    ftol, maxls = float(opts.ftol), int(opts.maxls)
    c1, c2 = _c1(opts, False), float(opts.c2)

    def advance(nsteps):
        return loop(
            *fns, args, x, g, d, xt, gt, S, Y, rho, alpha, ls, fs, ns,
            nsteps, maxiter, maxfev, gtol, ftol, maxls, c1, c2,
        )  # fmt: skip

    def current():
        return x, float(fs[0]), g, int(ns[0])

    status, allvecs = drive(advance, current, obj, x0)
    if status == GRADIENT_SHAPE:  # as the glue raises for every other method
        raise ValueError("fun (jac=True) returned a gradient of another length than x")
    out = result(x, fs[0], g, status, ns[0], ns[1], ns[2], 0, allvecs, reused)
    head, count = int(ns[3]), int(ns[4])
    rows = [(head - count + j) % m1 for j in range(count)]  # oldest first
    out["hess_inv"] = _hess_inv(S[rows], Y[rows], n)
    return out


def _max_evaluations(opts):
    """The evaluation limit: the smaller of ``maxfun`` and ``maxfev``."""
    limits = [int(v) for v in (opts.maxfun, opts.maxfev) if v is not None]
    return min(limits) if limits else 2**62


def _c1(opts, bounded):
    """``c1``, or its default: 1e-4 without bounds, L-BFGS-B's 1e-3 with them."""
    if opts.c1 is not None:
        return float(opts.c1)
    return 1e-3 if bounded else 1e-4


def _finite_bounds(obj):
    """``(lb, ub, boxed)`` as float64 arrays, or ``(None, None, False)`` when no side is finite.

    Infinite bounds on every side are no constraint: the unbounded loop runs
    (L-BFGS-B's own ``cnstnd`` is False then, and its iteration is the same).
    ``boxed``: every variable has two finite bounds.
    """
    if obj.lb is None and obj.ub is None:
        return None, None, False
    n = obj.x0.shape[0]
    lb = np.full(n, -np.inf) if obj.lb is None else np.ascontiguousarray(obj.lb, np.float64)
    ub = np.full(n, np.inf) if obj.ub is None else np.ascontiguousarray(obj.ub, np.float64)
    if lb.shape != (n,) or ub.shape != (n,):
        raise ValueError(f"bounds must have shape ({n},)")
    kind = bounds_kind(lb, ub)
    if kind < 0:
        raise ValueError("bounds must not be NaN, and each lower bound <= its upper bound")
    if kind == 0:
        return None, None, False
    return lb, ub, kind == 2


_INV_HESS_PRODUCT = None


def _inv_hess_product_class():
    """:class:`InvHessProduct`, built on first use (scipy.optimize imports in ~0.3 s)."""
    global _INV_HESS_PRODUCT
    if _INV_HESS_PRODUCT is None:
        from scipy.optimize import LbfgsInvHessProduct

        class InvHessProduct(LbfgsInvHessProduct):
            r"""scipy's ``LbfgsInvHessProduct`` of the run's pairs, built in O(1).

            The operator :math:`H` of the two-loop recursion on the pairs
            :math:`(s_i, y_i)` (rows of ``sk``, ``yk``, oldest first), exactly
            scipy's class (its ``matvec``, ``todense``, attributes), made
            without the two costs of its constructor that every ``minimize``
            call paid whether or not the result's ``hess_inv`` is read:
            ``LinearOperator``'s generic checks of ``shape`` and ``dtype``
            (these are known here) and :math:`\rho_i = 1 / s_i^T y_i`, which
            is computed, as scipy does, on its first use.  Together about
            6 us of a 58 us bounded 10-D Rosenbrock solve.
            """

            def __init__(self, sk, yk):  # the attributes scipy's __init__ sets
                n_corrs, n = sk.shape
                self.dtype = _FLOAT64
                self.shape = (n, n)
                self.sk = sk
                self.yk = yk
                self.n_corrs = n_corrs

            def __getattr__(self, name):  # only for attributes not set yet
                if name == "rho":
                    rho = 1 / np.einsum("ij,ij->i", self.sk, self.yk)
                    self.rho = rho
                    return rho
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

        InvHessProduct.__module__ = __name__
        InvHessProduct.__qualname__ = "InvHessProduct"
        _INV_HESS_PRODUCT = InvHessProduct
    return _INV_HESS_PRODUCT


_FLOAT64 = np.dtype(np.float64)


def __getattr__(name):
    # ``InvHessProduct`` as a module attribute, made on first use: pickle
    # finds a result's hess_inv's class here, in a process that made none
    if name == "InvHessProduct":
        return _inv_hess_product_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _hess_inv(S, Y, n):
    """The inverse Hessian approximation as scipy's ``LbfgsInvHessProduct``.

    scipy's L-BFGS-B returns the same object, built from the same pairs
    (oldest first); without pairs it is the identity.  ``S``, ``Y`` are
    copied (the loop's memory may be reused by the next run).
    """
    if S.shape[0] == 0:
        return _inv_hess_product_class()(np.zeros((0, n)), np.zeros((0, n)))
    return _inv_hess_product_class()(S.copy(), Y.copy())


def bounded_state(x, f, g, lb, ub, maxcor):
    """The arrays :func:`_lbfgsb_loop` runs on, after ``x, g`` and the bounds.

    Returns the tuple of work arrays and memory (in the loop's argument
    order, ``V`` to ``ls``: :func:`fastopt.solvers._lbfgsb.work_arrays`'s
    bundles and the line search's state) and the state ``fs``, ``ns``.
    """
    work = (*work_arrays(x.shape[0], int(maxcor)), np.zeros(_LS_SIZE))
    fs = np.array([f, 1.0])
    ns = np.array([0, 1, 1, 0, RUNNING], dtype=np.int64)
    return work, fs, ns


#: Work arrays of finished bounded runs, for the next run of the same size.
#: Allocating the arrays (24 before they were bundled by shape) took about
#: 5 us of a 58 us bounded 10-D Rosenbrock solve; a run takes a set from here
#: (or allocates one) and gives it back when it ends, so concurrent and
#: nested runs (a callback that calls ``minimize``) each hold their own.
#: The loop reads only what it wrote in the run (the memory's rows below its
#: count, the line search's slots after starting it, ...), so a reused set
#: gives the same iterates as a new one.  Only small problems are pooled (at
#: most :data:`_POOL_MAX_SIZE` elements in the memory), where the
#: allocations are a visible share of a run, and no more than
#: :data:`_POOL_DEPTH` sets per size are kept.
_WORK_POOL = {}
_POOL_MAX_SIZE = 1 << 14
_POOL_DEPTH = 4
_POOL_SIZES = 16


def _take_state(x, f, g, lb, ub, maxcor):
    """:func:`bounded_state`'s arrays, reused from :data:`_WORK_POOL` when it has a set."""
    free = _WORK_POOL.get((x.shape[0], maxcor))
    if free:
        try:
            work, fs, ns = free.pop()
        except IndexError:  # another thread took the last one
            return bounded_state(x, f, g, lb, ub, maxcor)
        fs[0] = f
        fs[1] = 1.0
        ns[:] = (0, 1, 1, 0, RUNNING)
        return work, fs, ns
    return bounded_state(x, f, g, lb, ub, maxcor)


def _give_back_state(n, maxcor, state):
    """Keep a finished run's arrays for the next run of the same size (if small)."""
    if n * maxcor > _POOL_MAX_SIZE:
        return
    free = _WORK_POOL.get((n, maxcor))
    if free is None:
        if len(_WORK_POOL) >= _POOL_SIZES:
            return
        free = _WORK_POOL.setdefault((n, maxcor), [])
    if len(free) < _POOL_DEPTH:
        free.append(state)


def _run_bounded(obj, opts, fg, compiled, args, x, x0, f, g, lb, ub, boxed, maxfev, reused):
    """:func:`run` with bounds: the L-BFGS-B loop (:func:`_lbfgsb_loop`)."""
    loop, fns = _BLOOP.select(compiled, _unchecked(fg) if compiled else fg)
    maxcor = int(opts.maxcor)
    state = _take_state(x, f, g, lb, ub, maxcor)
    work, fs, ns = state
    maxiter, gtol = int(obj.maxiter), float(obj.gtol)
    ftol, maxls = float(opts.ftol), int(opts.maxls)
    c1, c2 = _c1(opts, True), float(opts.c2)

    def advance(nsteps):
        return loop(*fns, args, x, g, lb, ub, *work, fs, ns,
                    nsteps, maxiter, maxfev, gtol, ftol, maxls, c1, c2, boxed)  # fmt: skip

    def current():
        return x, float(fs[0]), g, int(ns[0])

    status, allvecs = drive(advance, current, obj, x0)
    if status == GRADIENT_SHAPE:  # as the glue raises for every other method
        _give_back_state(x.shape[0], maxcor, state)
        raise ValueError("fun (jac=True) returned a gradient of another length than x")
    out = result(x, fs[0], g, status, ns[0], ns[1], ns[2], 0, allvecs, reused)
    count = int(ns[3])
    pairs = work[2]  # P: S, Y
    out["hess_inv"] = _hess_inv(pairs[0, :count], pairs[1, :count], x.shape[0])
    _give_back_state(x.shape[0], maxcor, state)
    return out
