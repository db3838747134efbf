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

One pass costs one curvature product (``hessp``, or one extra gradient for
the finite difference :math:`(\nabla f(w + \sigma p) - \nabla f(w))/\sigma`,
:math:`\sigma = \sigma_0/\|p\|`) and one value-and-gradient at the trial
point.
"""

import math
from typing import NamedTuple

import numpy as np

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
from ._common import (
    RUNNING,
    LazyLoop,
    dot_diff,
    drive,
    inf_norm,
    initial_fg,
    lincomb,
    max_abs_diff,
    nonfinite_fg,
    prepare_product,
    reject_bounds,
    result,
    scale,
    start_point,
    use_compiled,
)

ALIASES = ()

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
        0 stops only when a step no longer moves x at all).
        ``variant="netlab"``: stop (XTOL) when the step is below ``xtol``
        *and* the change of f is below ``ftol`` (Netlab's ``options(2)``).
        None: 0.0 (Møller) or 1e-4 (Netlab).
    maxfev : int or None
        Maximum number of evaluations of ``fg`` (None: no limit beyond
        ``maxiter``).
    variant : {"moller", "netlab"}
        ``"moller"``: the algorithm of the paper. ``"netlab"``: Nabney's
        ``scg.m`` (see the notes of :func:`run`).
    """

    sigma: float = 1e-4
    lambda_: float | None = None
    ftol: float | None = None
    xtol: float | None = None
    maxfev: int | None = None
    variant: str = "moller"


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


def _scg_loop(
    fg, hessp, args, x, g, p, fs, ns,
    nsteps, maxiter, maxfev, gtol, ftol, xtol, sigma0, netlab,
):  # fmt: skip
    """Run SCG passes until ``nsteps`` more steps are accepted or a stop test.

    ``hessp`` None selects the finite-difference curvature; compiled, that
    None test is resolved at compile time (numba prunes the dead branch), so
    no flag or stand-in function is needed.

    The state comes in and goes out through ``x, g, p`` (returned, possibly
    new arrays) and the small arrays ``fs`` (floats) and ``ns`` (integers),
    updated in place, so a caller can resume after any accepted step.
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
    while True:
        if nit >= stop_at:
            break
        if pending != RUNNING:
            status = pending
            break
        if inf_norm(g) <= gtol:
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
                p = scale(-1.0, g)
                pp = float(p.dot(p))
            if netlab and float(p.dot(g)) >= 0.0:
                # Netlab restarts along -g whenever p is not a descent direction.
                p = scale(-1.0, g)
                pp = float(p.dot(p))
            # Møller step 2: the curvature along p, from hessp or a
            # finite difference of the gradient with sigma = sigma0/|p|.
            if hessp is not None:
                hv = hessp(x, p, *args)
                nhev += 1
                theta = float(p.dot(hv))
                if not math.isfinite(theta):
                    status = NONFINITE_H
                    break
            else:
                sigma = sigma0 / math.sqrt(pp)
                _, g_plus = fg(lincomb(1.0, x, sigma, p), *args)
                nfev += 1
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
        mu = -float(p.dot(g))
        if mu == 0.0:
            # p orthogonal to g (possible on non-quadratic problems after
            # many rejections): restart along the steepest descent direction;
            # if that too gives mu == 0, |g|^2 underflowed: nothing is left.
            if restarted:
                status = LINESEARCH
                break
            p = scale(-1.0, g)
            pp = float(p.dot(p))
            success = True
            restarted = True
            continue
        restarted = False
        alpha = mu / delta
        x_new = lincomb(1.0, x, alpha, p)
        f_new, g_new = fg(x_new, *args)
        nfev += 1
        njev += 1
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
            gg_new = float(g_new.dot(g_new))
            if not math.isfinite(gg_new):
                status = NONFINITE_G
                break
            df = f - f_new
            step = max_abs_diff(x_new, x)
            f_old = f
            x = x_new
            f = float(f_new)
            nit += 1
            nsucc += 1
            lam_bar = 0.0
            success = True
            # Step 7: restart every N passes (Møller) or every N successes
            # (Netlab), else the conjugate direction with
            # beta = (|r_new|^2 - r_new.r) / mu.  Using the *old* gradient
            # here is what GPy's port lost (beta == 0: steepest descent).
            if (netlab and nsucc == n) or (not netlab and k % n == 0):
                p = -g_new
                nsucc = 0
            else:
                beta = (gg_new - float(g_new.dot(g))) / mu
                p = lincomb(beta, p, -1.0, g_new)
            g = g_new
            pp = float(p.dot(p))
            if netlab:
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
    return status, x, g, p


_LOOP = LazyLoop(_scg_loop)


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
        one ``fg`` evaluation and counts in ``nfev``/``njev`` only.

    Notes
    -----
    Møller's algorithm (default), with :math:`\sigma_0 = 10^{-4}`,
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
       :math:`k \bmod N = 0`, else :math:`p_{k+1} = r_{k+1} + \beta_k p_k`,
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
    """
    validate(opts)
    reject_bounds(obj, "scg")
    lam0, ftol0, xtol0 = _VARIANT_DEFAULTS[opts.variant]
    lam = lam0 if opts.lambda_ is None else float(opts.lambda_)
    ftol = ftol0 if opts.ftol is None else float(opts.ftol)
    xtol = xtol0 if opts.xtol is None else float(opts.xtol)
    maxfev = 2**62 if opts.maxfev is None else int(opts.maxfev)
    args = tuple(obj.args)
    x = start_point(obj)
    x0 = x.copy()
    f, g = initial_fg(obj, x, args)
    nhev = 0
    bad = nonfinite_fg(f, g)
    if bad:
        return result(x, f, g, bad, 0, 1, 1, 0, [x0] if obj.return_all else None)

    compiled = use_compiled(obj)
    hessp = None
    if obj.hessp is not None:
        hessp, nhev = prepare_product(obj.hessp, compiled, x, args, "hessp")
    loop = _LOOP.get(compiled)

    p = -g
    fs = np.array([f, lam, 0.0, 0.0, 0.0, float(p.dot(p))])
    ns = np.array([0, 1, 1, nhev, 0, 0, 1, RUNNING], dtype=np.int64)
    state = [x, g, p]

    def advance(nsteps):
        status, state[0], state[1], state[2] = loop(
            fg, hessp, args, state[0], state[1], state[2], fs, ns,
            nsteps, int(obj.maxiter), maxfev, float(obj.gtol), ftol, xtol, float(opts.sigma),
            opts.variant == "netlab",
        )  # fmt: skip
        return status

    def current():
        return state[0], float(fs[0]), state[1], int(ns[0])

    fg = obj.fg
    status, allvecs = drive(advance, current, obj, x0)
    x, g = state[0], state[1]
    return result(x, fs[0], g, status, ns[0], ns[1], ns[2], ns[3], allvecs)
