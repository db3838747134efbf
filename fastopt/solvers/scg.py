r"""Scaled conjugate gradient (Møller 1993), with Netlab's variant.

SCG is conjugate gradient without a line search: the step along the
direction :math:`p_k` is the Newton step of the one-dimensional model,
:math:`\alpha_k = \mu_k / \delta_k` with :math:`\mu_k = p_k^T r_k`,
:math:`r_k = -\nabla f(w_k)` and the curvature
:math:`\delta_k = p_k^T H p_k + \lambda_k \|p_k\|^2`, and a
Levenberg-Marquardt scale :math:`\lambda_k` grows or shrinks with the ratio
of actual to predicted reduction

.. math::

    \Delta_k = \frac{2 \delta_k \,[f(w_k) - f(w_k + \alpha_k p_k)]}{\mu_k^2}.

One pass costs one curvature product (``hessp``, or one gradient for the
finite difference :math:`(\nabla f(w + \sigma p) - \nabla f(w))/\sigma`,
:math:`\sigma = \sigma_0/\|p\|`), one function value at the trial point,
and its gradient if the step is accepted: a rejected pass costs one function
value, as in the paper.  (With ``jac=True`` the value and the gradient come
together, so the trial point costs one ``fun`` call, accepted or not, and
the finite-difference gradient one more.)
"""

import math
from typing import NamedTuple

import numpy as np

from .. import _jit
from .._status import (
    FTOL,
    LINESEARCH,
    MAXFEV,
    MAXITER,
    NONFINITE_F,
    NONFINITE_G,
    NONFINITE_H,
    SUCCESS,
    XTOL,
)
from ._lazy_loop import LazyLoop, use_compiled
from ._products import prepare_product
from ._run import (
    RUNNING,
    drive,
    grad_fev,
    nonfinite_fg,
    reject_batches,
    reject_bounds,
    result,
    start_fg,
    start_point,
)
from ._vectors import (
    copy_into,
    dot,
    dot_compiled,
    dot_diff,
    inf_norm,
    lincomb_into,
    max_abs_diff,
    scale_into,
)

ALIASES = ()

#: full batch only: SCG's step and its reduction test need exact f and curvature
#: along p (read by the registry: batch_size/epochs are a ValueError)
MINIBATCH = False

VARIANTS = ("moller", "netlab")

#: Netlab's clamp on the scale (``betamin``, ``betamax`` in ``scg.m``)
_NETLAB_LAM_MIN = 1e-15
_NETLAB_LAM_MAX = 1e100

#: defaults that depend on the variant: (lambda_, ftol, xtol)
_VARIANT_DEFAULTS = {
    # Møller: lambda_1 <= 1e-6.  No f test (an f change below rounding is
    # normal in the last conjugate steps, which still cut the gradient), and
    # stop only when an accepted step leaves x bitwise unchanged.
    "moller": (1e-6, 0.0, 0.0),
    # Netlab scg.m: beta = 1, options(2) = options(3) = 1e-4 (absolute).
    "netlab": (1.0, 1e-4, 1e-4),
}


class Options(NamedTuple):
    r"""Options of ``method="scg"``.

    Attributes
    ----------
    sigma : float
        :math:`\sigma_0`, the finite-difference step along ``p`` is
        :math:`\sigma_0/\|p\|` (Møller: :math:`0 < \sigma_0 \le 10^{-4}`).
        Unused when ``hessp`` is given. Default 1e-4.
    lambda_ : float or None
        Initial scale :math:`\lambda_1`. None: 1e-6 (Møller) or 1.0 (Netlab).
    ftol : float or None
        ``variant="moller"``: when positive, stop (FTOL) when an accepted
        step has
        :math:`f_k - f_{k+1} \le \mathrm{ftol}\cdot\max(|f_k|, |f_{k+1}|, 1)`.
        ``variant="netlab"``: absolute change of f, tested together with
        ``xtol``. None: 0.0 (Møller: no f test) or 1e-4 (Netlab's
        ``options(3)``).
    xtol : float or None
        ``variant="moller"``: stop (XTOL) when an accepted step has
        :math:`\max_i |w_{k+1,i} - w_{k,i}| \le \mathrm{xtol}` (the default
        0: no x test).  A step that leaves x unchanged while the gradient
        is above ``gtol`` is a stall, never XTOL (see the notes of
        :func:`run`).
        ``variant="netlab"``: stop (XTOL) when the step is below ``xtol``
        *and* the change of f is below ``ftol`` (Netlab's ``options(2)``).
        None: 0.0 (Møller) or 1e-4 (Netlab).
    maxfev : int or None
        Maximum number of function evaluations, ``nfev`` (None: no limit
        beyond ``maxiter``).
    variant : {"moller", "netlab"}
        ``"moller"``: the algorithm of the paper. ``"netlab"``: Nabney's
        ``scg.m`` (see the notes of :func:`run`).
    restart : {"powell", "every-n"}
        When the direction restarts along :math:`-\nabla f`. ``"powell"``
        (default): whenever successive gradients are far from orthogonal,
        :math:`|g_{k+1}^T g_k| \ge 0.2\,\|g_{k+1}\|^2` (Powell 1977); on a
        quadratic it never restarts, so the steps stay exact CG steps.
        ``"every-n"``: the variant's own periodic rule, Møller's restart every
        N passes (with ``variant="moller"``, the paper's exact algorithm) or
        Netlab's every N accepted steps (with ``variant="netlab"``, exactly
        ``scg.m``).  Powell's rule is the default because it measures best:
        on the Moré-Garbow-Hillstrom set it solves more problems with fewer
        evaluations than the periodic rule and than scipy's CG
        (``docs/algorithms/scg.rst``, ``benchmarks/mgh_compare.py``).
    """

    sigma: float = 1e-4
    lambda_: float | None = None
    ftol: float | None = None
    xtol: float | None = None
    maxfev: int | None = None
    variant: str = "moller"
    restart: str = "powell"


#: values of ``Options.restart``
RESTARTS = ("powell", "every-n")


def validate(opts):
    """Raise ValueError for an invalid option, naming the value."""
    if not (math.isfinite(opts.sigma) and opts.sigma > 0):
        raise ValueError(f"Invalid sigma value: {opts.sigma}")
    if opts.lambda_ is not None and not (math.isfinite(opts.lambda_) and opts.lambda_ > 0):
        raise ValueError(f"Invalid lambda_ value: {opts.lambda_}")
    if opts.ftol is not None and not opts.ftol >= 0:
        raise ValueError(f"Invalid ftol value: {opts.ftol}")
    if opts.xtol is not None and not opts.xtol >= 0:
        raise ValueError(f"Invalid xtol value: {opts.xtol}")
    maxfev = opts.maxfev
    if maxfev is not None and not (isinstance(maxfev, int | np.integer) and maxfev >= 1):
        raise ValueError(f"Invalid maxfev value: {opts.maxfev}")
    if opts.variant not in VARIANTS:
        raise ValueError(f"Invalid variant value: {opts.variant!r} (expected one of {VARIANTS})")
    if opts.restart not in RESTARTS:
        raise ValueError(f"Invalid restart value: {opts.restart!r} (expected one of {RESTARTS})")


@_jit.kernel
def _accept(x, xt, g, g_new, p, mu, restart, powell):
    """Accept the trial point ``xt`` (gradient ``g_new``): ``x``, ``g``, ``p`` in place.

    Møller's step 7: the new direction is ``-g_new`` on a restart, else
    :math:`p \\leftarrow \\beta p - g_{new}` with
    :math:`\\beta = (\\|g_{new}\\|^2 - g_{new}^T g)/\\mu`.  Using the *old*
    gradient ``g`` in beta is what GPy's port lost (beta == 0: steepest
    descent).  ``restart`` forces a restart (the periodic rule); with
    ``powell`` Powell's test restarts too.  One kernel for the whole
    bookkeeping: the Python loop pays one call instead of seven.

    Returns ``(gg_new, step, pp, gnorm, restart)``: :math:`\\|g_{new}\\|^2`,
    :math:`\\max_i |xt_i - x_i|`, :math:`\\|p_{new}\\|^2`,
    :math:`\\|g_{new}\\|_\\infty` and whether it restarted.  A non-finite
    ``gg_new`` changes nothing.
    """
    gg_new = dot_compiled(g_new, g_new)
    if not math.isfinite(gg_new):
        return gg_new, 0.0, 0.0, 0.0, restart
    step = max_abs_diff(xt, x)
    copy_into(x, xt)
    gg_cross = dot_compiled(g_new, g)
    if powell and abs(gg_cross) >= 0.2 * gg_new:
        restart = True
    if restart:
        scale_into(p, -1.0, g_new)
    else:
        beta = (gg_new - gg_cross) / mu
        lincomb_into(p, beta, p, -1.0, g_new)
    copy_into(g, g_new)
    return gg_new, step, dot_compiled(p, p), inf_norm(g), restart


def _scg_loop(
    fun, fg, grad, hessp, args, x, g, p, xt, fs, ns,
    nsteps, maxiter, maxfev, gtol, ftol, xtol, sigma0, netlab, powell, gfev,
):  # fmt: skip
    """Run SCG passes until ``nsteps`` more steps are accepted or a stop test.

    ``hessp`` None selects the finite-difference curvature, which calls the
    gradient-only ``grad`` (its calls also count ``gfev`` function
    evaluations: 1 when ``grad`` evaluates ``fun`` too).  ``fun`` None
    evaluates the trial point with ``fg`` (value and gradient together:
    ``jac=True``); else ``fun`` there and ``grad`` only if the step is
    accepted, so a rejected pass costs one function value (Møller's step 7).
    Compiled, these None tests are resolved at compile time (numba prunes
    the dead branch), so no flag or stand-in function is needed.

    The state comes in and goes out through ``x, g, p`` and the small arrays
    ``fs`` (floats) and ``ns`` (integers), all updated in place, so a caller
    can resume after any accepted step; ``xt`` is the trial point.  Fixed
    buffers rather than new arrays per step: compiled, every array a variable
    takes or drops costs an atomic reference count (they were a third of
    the compiled loop's time on 2-D Rosenbrock), and an allocation.
    Stop tests run at the top of a pass, so a chunk of one step always ends
    with ``RUNNING`` and the caller sees (and calls back on) every iterate.

    ``fs = [f, lam, lam_bar, delta, theta, pp]``: f at x, the scale and
    Møller's :math:`\\bar\\lambda`, the scaled curvature, the raw curvature
    :math:`p^T H p` and :math:`\\|p\\|^2`.
    ``ns = [nit, nfev, njev, nhev, k, nsuccess, success, pending]``: accepted
    steps, counters, passes (Møller's k), successes since the last restart
    (Netlab), whether the last pass was accepted, and a stop status found
    after an accepted step and reported at the next pass.
    """
    n = x.shape[0]
    f = float(fs[0])
    lam = float(fs[1])
    lam_bar = float(fs[2])
    delta = float(fs[3])
    theta = float(fs[4])
    pp = float(fs[5])
    nit = int(ns[0])
    nfev = int(ns[1])
    njev = int(ns[2])
    nhev = int(ns[3])
    k = int(ns[4])
    nsucc = int(ns[5])
    success = ns[6] != 0
    pending = int(ns[7])
    stop_at = nit + nsteps
    status = RUNNING
    restarted = False
    gnorm = inf_norm(g)
    while True:
        if nit >= stop_at:
            break
        if pending != RUNNING:
            status = pending
            break
        if gnorm <= gtol:
            status = SUCCESS
            break
        if nit >= maxiter:
            status = MAXITER
            break
        if nfev >= maxfev:
            status = MAXFEV
            break
        if success:
            if pp == 0.0:
                # p vanished without g vanishing (beta*p cancelled -g): restart.
                scale_into(p, -1.0, g)
                pp = dot(p, p)
            if netlab and dot(p, g) >= 0.0:
                # Netlab restarts along -g whenever p is not a descent direction.
                scale_into(p, -1.0, g)
                pp = dot(p, p)
            # Møller step 2: the curvature along p, from hessp or a
            # finite difference of the gradient with sigma = sigma0/|p|.
            if hessp is not None:
                hv = hessp(x, p, *args)
                nhev += 1
                theta = dot(p, hv)
                if not math.isfinite(theta):
                    status = NONFINITE_H
                    break
            else:
                sigma = sigma0 / math.sqrt(pp)
                lincomb_into(xt, 1.0, x, sigma, p)
                g_plus = grad(xt, *args)
                nfev += gfev
                njev += 1
                theta = dot_diff(p, g_plus, g) / sigma
                if not math.isfinite(theta):
                    status = NONFINITE_G
                    break
        if netlab:
            delta = theta + lam * pp
            if delta <= 0.0:
                delta = lam * pp
                lam = lam - theta / pp
        else:
            # Steps 3-4: scale the curvature; after a failed pass the old
            # delta only gets the increase of lambda (lam_bar is the old lam).
            if success:
                delta = theta
            delta += (lam - lam_bar) * pp
            if delta <= 0.0:
                # Negative curvature: raise lambda so the scaled delta > 0.
                lam_bar = 2.0 * (lam - delta / pp)
                delta = -delta + lam * pp
                lam = lam_bar
        if not delta > 0.0:
            # Only when lambda underflowed to 0 along a zero-curvature p.
            status = LINESEARCH
            break
        # Step 5: mu = p.r with r = -g; alpha is the 1-D Newton step.
        mu = -dot(p, g)
        if mu == 0.0:
            # p orthogonal to g (possible on non-quadratic problems after
            # many rejections): restart along the steepest descent direction;
            # if that too gives mu == 0, |g|^2 underflowed: nothing is left.
            if restarted:
                status = LINESEARCH
                break
            scale_into(p, -1.0, g)
            pp = dot(p, p)
            success = True
            restarted = True
            continue
        restarted = False
        alpha = mu / delta
        lincomb_into(xt, 1.0, x, alpha, p)
        if fun is None:
            f_new, g_new = fg(xt, *args)
            njev += 1
        else:
            f_new = fun(xt, *args)
            g_new = g  # replaced by grad(xt) if the step is accepted
        nfev += 1
        k += 1
        if not math.isfinite(f_new):
            status = NONFINITE_F
            break
        # Step 6: actual over predicted reduction.
        # (written so that mu*mu cannot underflow to 0)
        Delta = 2.0 * (delta / mu) * ((f - f_new) / mu)
        if not math.isfinite(Delta):
            # delta or 1/mu^2 overflowed: no representable step is left.
            status = LINESEARCH
            break
        pp_old = pp
        if Delta >= 0.0:
            # Step 7: restart every N passes (Møller) or every N successes
            # (Netlab), or by Powell's test in their place (in _accept),
            # else the conjugate direction (see _accept).
            restart = not powell and ((netlab and nsucc + 1 == n) or (not netlab and k % n == 0))
            if fun is not None:
                g_new = grad(xt, *args)
                nfev += gfev
                njev += 1
            gg_new, step, pp, gnorm, restart = _accept(x, xt, g, g_new, p, mu, restart, powell)
            if not math.isfinite(gg_new):
                status = NONFINITE_G
                break
            df = f - f_new
            f_old = f
            f = float(f_new)
            nit += 1
            nsucc = 0 if restart else nsucc + 1
            lam_bar = 0.0
            success = True
            if step == 0.0 and gnorm > gtol:
                # A stalled step: alpha*p vanished against x (the step
                # underflowed, or a huge curvature made it tiny), so f did
                # not change (Delta = 0 is "accepted") and x stays put with
                # the gradient still large.  No tolerance was met: not a
                # success (an x test would call it one).
                pending = LINESEARCH
            elif netlab:
                if step < xtol and abs(df) < ftol:
                    pending = XTOL
            elif ftol > 0.0 and df <= ftol * max(abs(f_old), abs(f), 1.0):
                pending = FTOL
            elif step <= xtol:
                pending = XTOL
        else:
            lam_bar = lam
            success = False
        # Step 8 (and Netlab's multiplicative rule): adapt the scale.
        if netlab:
            if Delta < 0.25:
                lam = min(4.0 * lam, 1e100)
            if Delta > 0.75:
                lam = max(0.5 * lam, 1e-15)
        else:
            if Delta >= 0.75:
                lam = lam / 4.0
            if Delta < 0.25:
                lam = lam + delta * (1.0 - Delta) / pp_old
    fs[0] = f
    fs[1] = lam
    fs[2] = lam_bar
    fs[3] = delta
    fs[4] = theta
    fs[5] = pp
    ns[0] = nit
    ns[1] = nfev
    ns[2] = njev
    ns[3] = nhev
    ns[4] = k
    ns[5] = nsucc
    ns[6] = 1 if success else 0
    ns[7] = pending
    return status


# Inlining _accept (called once per accepted step, five array arguments)
# saves about 4 us per 2-D Rosenbrock solve for 0.2 s of compiling;
# inlining every kernel the loop calls saved no more and cost 0.7 s.
_LOOP = LazyLoop(_scg_loop, 4, inline=("_accept",), cache=True)


def run(obj, opts):
    r"""Minimize ``obj`` by scaled conjugate gradient.

    Parameters
    ----------
    obj : fastopt._objective.Objective
        The problem; ``obj.hessp`` (optional) gives exact curvature products.
    opts : Options
        Method options (see :class:`Options`).

    Returns
    -------
    dict
        ``x, fun, jac, status, nit, nfev, njev, nhev`` (and ``allvecs`` with
        ``return_all``).  ``nit`` counts accepted steps; a rejected pass costs
        one function value (one ``fg`` evaluation when ``obj.grad`` calls
        ``fun`` too, as with ``jac=True``) and counts in ``nfev`` (``njev``)
        only.

    Notes
    -----
    Møller's algorithm (the default variant), with :math:`\sigma_0 = 10^{-4}`,
    :math:`\lambda_1 = 10^{-6}`, :math:`\bar\lambda_1 = 0`,
    :math:`p_1 = r_1 = -\nabla f(w_1)`:

    1. if the last pass succeeded, :math:`\delta_k = p_k^T s_k` with
       :math:`s_k = H p_k` (``hessp``) or
       :math:`(\nabla f(w_k + \sigma_k p_k) - \nabla f(w_k))/\sigma_k`;
    2. :math:`\delta_k \mathrel{+}= (\lambda_k - \bar\lambda_k)\|p_k\|^2`; if
       :math:`\delta_k \le 0`: :math:`\bar\lambda_k = 2(\lambda_k -
       \delta_k/\|p_k\|^2)`, :math:`\delta_k = -\delta_k +
       \lambda_k\|p_k\|^2`, :math:`\lambda_k = \bar\lambda_k`;
    3. :math:`\mu_k = p_k^T r_k`, :math:`\alpha_k = \mu_k/\delta_k`, and
       :math:`\Delta_k` as above;
    4. if :math:`\Delta_k \ge 0` accept :math:`w_{k+1} = w_k + \alpha_k p_k`,
       :math:`\bar\lambda = 0`; restart :math:`p_{k+1} = r_{k+1}` when
       :math:`k \bmod N = 0` (``restart="every-n"``; the default restarts
       on Powell's test, below), else :math:`p_{k+1} = r_{k+1} + \beta_k p_k`,
       :math:`\beta_k = (\|r_{k+1}\|^2 - r_{k+1}^T r_k)/\mu_k`; if
       :math:`\Delta_k \ge 0.75`, :math:`\lambda_k \mathrel{/}= 4`.
       Otherwise :math:`\bar\lambda_k = \lambda_k` (a failed pass);
    5. if :math:`\Delta_k < 0.25`, :math:`\lambda_k \mathrel{+}=
       \delta_k (1 - \Delta_k)/\|p_k\|^2`.

    On a strictly convex quadratic the steps are exact conjugate-gradient
    steps (up to the tiny :math:`\lambda`), so SCG reaches the minimum in
    about N accepted steps.

    ``variant="netlab"`` follows Nabney's ``scg.m``: :math:`\lambda_1 = 1`;
    the curvature is recomputed as :math:`\theta_k + \lambda_k\|p_k\|^2`
    each pass; on :math:`\delta \le 0`, :math:`\delta = \lambda\|p\|^2` and
    :math:`\lambda \mathrel{-}= \theta/\|p\|^2`; :math:`\lambda \mathrel{*}= 4`
    if :math:`\Delta < 0.25`, :math:`\lambda \mathrel{*}= 1/2` if
    :math:`\Delta > 0.75`, clamped to :math:`[10^{-15}, 10^{100}]`; restart
    after N *successful* steps, and along :math:`-g` whenever
    :math:`p^T g \ge 0`; stop when an accepted step has
    :math:`\max|\alpha p| <` ``xtol`` and :math:`|\Delta f| <` ``ftol``.

    The default ``restart="powell"`` replaces either variant's periodic
    restart by Powell's test: restart along :math:`-g_{k+1}` when
    :math:`|g_{k+1}^T g_k| \ge 0.2\,\|g_{k+1}\|^2` (successive gradients far
    from orthogonal: conjugacy is lost).  ``restart="every-n"`` keeps the
    periodic restart above: with ``variant="moller"`` that is the paper's
    algorithm exactly, with ``variant="netlab"`` Nabney's ``scg.m`` exactly.
    Møller's restart every N passes makes 2-D SCG restart every other pass,
    which is why it measures worse.

    An accepted step that leaves x bitwise unchanged while
    :math:`\|g\|_\infty >` ``gtol`` (the step :math:`\alpha_k p_k`
    underflowed against :math:`w_k`) stops with the LINESEARCH status
    (``success=False``), whatever ``xtol``: no further pass can move x.

    Every variant also stops when :math:`\|g\|_\infty \le` ``gtol`` (SUCCESS),
    after ``maxiter`` accepted steps or ``maxfev`` evaluations, and on a
    non-finite f, gradient or curvature, returning the last finite iterate.
    With ``obj.compiled`` the loop runs in nopython mode; with a callback or
    ``return_all`` it runs one accepted step per call into compiled code.
    In compiled mode ``hessp`` is evaluated once more, before the loop, to
    check its output shape (counted in ``nhev``).

    References
    ----------
    .. [1] M. F. Møller, "A scaled conjugate gradient algorithm for fast
       supervised learning", Neural Networks 6(4):525-533, 1993.
    .. [2] I. T. Nabney, "NETLAB: Algorithms for Pattern Recognition",
       Springer, 2002 (``scg.m``).
    .. [3] M. J. D. Powell, "Restart procedures for the conjugate gradient
       method", Mathematical Programming 12:241-254, 1977.
    """
    validate(opts)
    reject_bounds(obj, "scg")
    reject_batches(obj, "scg")
    lam0, ftol0, xtol0 = _VARIANT_DEFAULTS[opts.variant]
    lam = lam0 if opts.lambda_ is None else float(opts.lambda_)
    ftol = ftol0 if opts.ftol is None else float(opts.ftol)
    xtol = xtol0 if opts.xtol is None else float(opts.xtol)
    maxfev = 2**62 if opts.maxfev is None else int(opts.maxfev)
    args = tuple(obj.args)
    x = start_point(obj)
    x0 = x.copy()
    f, g, reused = start_fg(obj, x, args)
    nhev = 0
    bad = nonfinite_fg(f, g)
    if bad:
        return result(x, f, g, bad, 0, 1, 1, 0, [x0] if obj.return_all else None, reused)

    compiled = use_compiled(obj)
    hessp = None
    if obj.hessp is not None:
        hessp, nhev = prepare_product(obj.hessp, compiled, x, args, "hessp")
    # jac=True: fun and grad each cost a value-and-gradient, so the trial
    # point takes fg (fun None) rather than fun and then grad on acceptance.
    fun = None if obj.grad_calls_fun else obj.fun
    gfev = grad_fev(obj)
    loop, fns = _LOOP.select(compiled, fun, obj.fg, obj.grad, hessp)

    p = -g
    xt = np.empty_like(x)
    fs = np.array([f, lam, 0.0, 0.0, 0.0, dot(p, p)])
    ns = np.array([0, 1, 1, nhev, 0, 0, 1, RUNNING], dtype=np.int64)
    maxiter, gtol, sigma0 = int(obj.maxiter), float(obj.gtol), float(opts.sigma)
    netlab = opts.variant == "netlab"
    powell = opts.restart == "powell"

    def advance(nsteps):
        return loop(
            *fns, args, x, g, p, xt, fs, ns,
            nsteps, maxiter, maxfev, gtol, ftol, xtol, sigma0, netlab, powell, gfev,
        )  # fmt: skip

    def current():
        return x, float(fs[0]), g, int(ns[0])

    status, allvecs = drive(advance, current, obj, x0)
    return result(x, fs[0], g, status, ns[0], ns[1], ns[2], ns[3], allvecs, reused)
