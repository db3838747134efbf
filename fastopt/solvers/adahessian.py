r"""AdaHessian (Yao et al. 2021) and ESGD's equilibration (Dauphin et al. 2015).

Adam with the squared gradient replaced by a randomized estimate of the
Hessian's diagonal from one Hessian-vector product per refresh:

.. math::

    \mathbb{E}[z \odot Hz] = \mathrm{diag}(H) \quad (z \text{ Rademacher}),
    \qquad
    \mathbb{E}[(Hv) \odot (Hv)] = \mathrm{diag}(H^2) \quad
    (v \text{ Rademacher or } \mathcal{N}(0, I)),

Hutchinson's estimate :math:`D = z \odot Hz` (AdaHessian) and the
equilibration estimate :math:`D = (Hv)^2` (ESGD, Gaussian :math:`v`).  With
:math:`s = D^2` (Hutchinson) or :math:`s = D` (equilibration):

.. math::

    m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad
    v_t = \beta_2 v_{t-1} + (1 - \beta_2) s_t, \\
    x_{t} &= x_{t-1} - \eta\,\frac{m_t / (1 - \beta_1^t)}
             {\left(v_t / (1 - \beta_2^t)\right)^{k/2} + \epsilon}.

Since :math:`z_i^2 = 1`, AdaHessian's :math:`s = (z \odot Hz)^2 = (Hz)^2` is
itself an equilibration sample (without the block averaging that AdaHessian
applies to convolution kernels): the two estimators share their expectation
:math:`\mathrm{diag}(H^2)` and differ only in the distribution of the probe
(Rademacher vs Gaussian), hence in their variance.
"""

import math
from typing import Any, NamedTuple

import numpy as np

from .. import _jit
from .._batching import seed_state, splitmix64, take_args
from .._status import (
    DIVERGED,
    EPOCHS,
    MAXITER,
    NONFINITE_F,
    NONFINITE_G,
    NONFINITE_H,
    SUCCESS,
)
from ._lazy_loop import LazyLoop, dual, use_compiled
from ._products import check_fd_step, curvature_product, prepare_diagonal, prepare_product
from ._run import (
    RUNNING,
    batch_setup,
    drive,
    grad_fev,
    initial_fg,
    next_batch,
    nonfinite_fg,
    result,
    start_fg,
    start_point,
)
from ._vectors import all_finite, copy_into, inf_norm

ALIASES = ()

#: ``batch_size``/``epochs`` apply: one update per minibatch (read by the registry)
MINIBATCH = True

ESTIMATORS = ("hutchinson", "equilibration")

#: separates the probe-vector stream from the minibatch stream of the same seed
_Z_SALT = 0xD1B54A32D192ED03

#: the run stops (status DIVERGED, x the best iterate) once f (in minibatch
#: mode the batch loss) exceeds
#: the best value seen by this factor times max(|f_best|, |f(x0)|, 1).  On the
#: MGH problems, runs that recover never rose above 1e7 times that scale;
#: on Powell singular a Hutchinson sample of exactly 0 (z * Hz with
#: H_44 = 490 = |H_41| + |H_43|) made the first step 0.15 * 310 / eps =
#: 4.65e5 and f went from 215 to 8e266, finite, never to recover (issue #3).
_DIVERGENCE = 1e10


class Options(NamedTuple):
    r"""Options of ``method="adahessian"``.

    Attributes
    ----------
    learning_rate : float
        :math:`\eta`. Default 0.15 (Yao et al.).
    b1, b2 : float
        :math:`\beta_1, \beta_2`, decay rates of the gradient and curvature
        moments. Defaults 0.9, 0.999.
    eps : float
        :math:`\epsilon`, added to the denominator. Default 1e-4.
    hessian_power : float
        :math:`k \in [0, 1]`; 1 is a Newton-like step, 0 is momentum SGD.
        Default 1.
    update_every : int
        Draw a new curvature estimate every ``update_every`` steps (the
        moment :math:`v` is updated every step with the latest one).
        Default 1.
    estimator : {"hutchinson", "equilibration"}
        ``"hutchinson"``: Rademacher :math:`z`, :math:`D = z \odot Hz`
        (AdaHessian); ``"equilibration"``: Gaussian :math:`v`,
        :math:`D = (Hv)^2` (ESGD).
    seed : int or None
        Seed of the probe vectors (SplitMix64, the same in Python and
        compiled runs). None: ``obj.seed``, else 0.
    fd_step : float
        Relative step :math:`\sigma` of the finite-difference curvature
        product used without ``hessp``,
        :math:`Hz \approx (\nabla f(x + e z) - \nabla f(x))/e`,
        :math:`e = \sigma (1 + \|x\|)/\|z\|`.  Default 1e-4, about
        :math:`\epsilon_{mach}^{1/4}`: robust to a gradient that is itself a
        finite difference (``jac=None``), whose rounding error of about
        :math:`\sqrt{\epsilon_{mach}}\,|f|` a step of
        :math:`\sqrt{\epsilon_{mach}}` would blow up to :math:`O(|f|)` in
        :math:`Hz` (see the notes of :func:`run`); the truncation error it
        adds, :math:`O(\sigma)`, is far below the Hutchinson sample's own
        variance.  Møller's SCG uses the same :math:`10^{-4}`.
    diagonal : callable or None
        ``diagonal(x, *args) -> ndarray of shape (n,)``: a Hessian diagonal
        (exact, or Gauss-Newton as Becker & LeCun 1988) used as :math:`D`
        in place of the randomized estimate; ``estimator`` and ``hessp``
        are then not used for the curvature.  Evaluated every
        ``update_every`` steps (counted in ``nhev``), on the minibatch's
        ``args`` in minibatch mode.  Must be an ``@njit`` function for the
        compiled loop to be used.  Default None.
    """

    learning_rate: float = 0.15
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-4
    hessian_power: float = 1.0
    update_every: int = 1
    estimator: str = "hutchinson"
    seed: int | None = None
    diagonal: Any = None
    fd_step: float = 1e-4


def validate(opts):
    """Raise ValueError for an invalid option, naming the value."""
    if not (math.isfinite(opts.learning_rate) and opts.learning_rate > 0):
        raise ValueError(f"Invalid learning_rate value: {opts.learning_rate}")
    if not 0.0 <= opts.b1 < 1.0:
        raise ValueError(f"Invalid b1 value: {opts.b1}")
    if not 0.0 <= opts.b2 < 1.0:
        raise ValueError(f"Invalid b2 value: {opts.b2}")
    if not (math.isfinite(opts.eps) and opts.eps >= 0.0):
        raise ValueError(f"Invalid eps value: {opts.eps}")
    if not 0.0 <= opts.hessian_power <= 1.0:
        raise ValueError(f"Invalid hessian_power value: {opts.hessian_power}")
    ue = opts.update_every
    if not (isinstance(ue, int | np.integer) and ue >= 1):
        raise ValueError(f"Invalid update_every value: {ue}")
    if opts.estimator not in ESTIMATORS:
        raise ValueError(
            f"Invalid estimator value: {opts.estimator!r} (expected one of {ESTIMATORS})"
        )
    if opts.seed is not None and not isinstance(opts.seed, int | np.integer):
        raise ValueError(f"Invalid seed value: {opts.seed!r}")
    if opts.fd_step is None:
        raise ValueError("Invalid fd_step value: None (need a number in (0, 1))")
    check_fd_step(opts.fd_step)
    if opts.diagonal is not None and not callable(opts.diagonal):
        raise ValueError(f"Invalid diagonal value: {opts.diagonal!r} (not callable)")


# The elementwise math is in cached kernels: compiled once per machine and
# called by the Python driver too, so both paths run the same machine code
# (NumPy's pow differs from libm's in the last bit).


@_jit.kernel
def rademacher(state, z):
    """Fill ``z`` with independent signs from SplitMix64; returns the new state.

    Each 64-bit output gives 64 signs (bit j of output i // 64 is the sign
    of ``z[i]``).
    """
    r = np.uint64(0)
    for i in range(z.shape[0]):
        j = i % 64
        if j == 0:
            state, r = splitmix64(state)
        z[i] = 1.0 if (r >> np.uint64(j)) & np.uint64(1) else -1.0
    return state


@_jit.kernel
def gaussian(state, z):
    """Fill ``z`` with standard normal draws (Box-Muller on SplitMix64).

    Returns the new state.  Uniforms are the top 53 bits of an output;
    ``u1`` is taken in (0, 1] so its logarithm is finite.
    """
    scale = 1.0 / 9007199254740992.0  # 2**-53
    n = z.shape[0]
    for i in range(0, n, 2):
        state, r1 = splitmix64(state)
        state, r2 = splitmix64(state)
        u1 = (float(r1 >> np.uint64(11)) + 1.0) * scale
        u2 = float(r2 >> np.uint64(11)) * scale
        rad = math.sqrt(-2.0 * math.log(u1))
        z[i] = rad * math.cos(2.0 * math.pi * u2)
        if i + 1 < n:
            z[i + 1] = rad * math.sin(2.0 * math.pi * u2)
    return state


@_jit.kernel
def draw(state, z, equilibration):
    """The probe vector: Rademacher (Hutchinson) or Gaussian (ESGD)."""
    if equilibration:
        return gaussian(state, z)
    return rademacher(state, z)


@_jit.kernel
def curvature_sample(z, hz, equilibration, out):
    """One diagonal sample: ``z * hz`` (Hutchinson) or ``hz * hz`` (equilibration).

    Returns False when ``hz`` is not finite.
    """
    for i in range(z.shape[0]):
        if not math.isfinite(hz[i]):
            return False
        out[i] = hz[i] * hz[i] if equilibration else z[i] * hz[i]
    return True


@_jit.kernel
def _update(x, x_prev, g, m, v, d, lr, b1, b2, bc1, bc2, eps, power, equilibration, lb, ub):
    """The AdaHessian/ESGD step in place, then the projection onto [lb, ub].

    ``bc1 = 1 - b1**t``, ``bc2 = 1 - b2**t``.  The curvature moment takes
    ``d**2`` (Hutchinson: the estimate of diag H enters squared, as Adam's
    g**2) or ``d`` (equilibration: already an estimate of diag(H^2)).
    """
    step = lr / bc1
    for i in range(x.shape[0]):
        x_prev[i] = x[i]
        m[i] = b1 * m[i] + (1.0 - b1) * g[i]
        s = d[i] if equilibration else d[i] * d[i]
        v[i] = b2 * v[i] + (1.0 - b2) * s
        vhat = v[i] / bc2
        if power == 1.0:
            den = math.sqrt(vhat)
        elif power == 0.0:
            den = 1.0
        else:
            den = math.pow(vhat, 0.5 * power)
        xi = x[i] - step * m[i] / (den + eps)
        if xi < lb[i]:
            xi = lb[i]
        elif xi > ub[i]:
            xi = ub[i]
        x[i] = xi


def diagonal_estimate(hessp, x, n_samples, seed=0, estimator="hutchinson", args=()):
    """Average of ``n_samples`` curvature samples at ``x`` (the solver's estimator).

    Parameters
    ----------
    hessp : callable
        ``hessp(x, v, *args) -> H v``.
    x : ndarray, shape (n,)
    n_samples : int
    seed : int
        Seed of the probe vectors.
    estimator : {"hutchinson", "equilibration"}
        Average :math:`z \\odot Hz`, Rademacher :math:`z` (unbiased for
        diag H), or :math:`(Hv)^2`, Gaussian :math:`v` (unbiased for
        diag(H^2)).

    Returns
    -------
    ndarray, shape (n,)
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"Invalid estimator value: {estimator!r} (expected one of {ESTIMATORS})")
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    state = seed_state(seed) ^ np.uint64(_Z_SALT)
    z = np.empty(n)
    d = np.empty(n)
    total = np.zeros(n)
    equilibration = estimator == "equilibration"
    for _ in range(n_samples):
        state = np.uint64(draw(state, z, equilibration))
        curvature_sample(z, np.asarray(hessp(x, z, *args), dtype=np.float64), equilibration, d)
        total += d
    return total / n_samples


@_jit.kernel
def _copy_finite(dst, src):
    """``dst[:] = src``; False (and ``dst`` partly written) if ``src`` is not finite."""
    for i in range(dst.shape[0]):
        if not math.isfinite(src[i]):
            return False
        dst[i] = src[i]
    return True


@dual
def ada_step(
    fg, grad, hessp, diagonal, x, f, g, m, v, d, z, x_prev, lb, ub, bargs, minibatch, refresh,
    zstate, b1t, b2t, lr, b1, b2, eps, power, equilibration, gfev, fd_step,
):  # fmt: skip
    """One AdaHessian update on the data ``bargs``.

    Minibatch mode evaluates ``f, g`` on the batch first; full-data mode has
    them at ``x`` already and evaluates the new point after the step.  On a
    non-finite value ``x`` is reset to the last good iterate.  The curvature
    ``d`` is ``diagonal(x, *bargs)`` when given (None is resolved at compile
    time), else a Hutchinson or equilibration sample.  Returns
    ``(status, f, g, zstate, b1t, b2t, nfev, njev, nhev)``.
    """
    nfev = 0
    njev = 0
    nhev = 0
    if minibatch:
        f, g = fg(x, *bargs)
        nfev += 1
        njev += 1
        if not math.isfinite(f):
            copy_into(x, x_prev)
            return NONFINITE_F, f, g, zstate, b1t, b2t, nfev, njev, nhev
        if not all_finite(g):
            copy_into(x, x_prev)
            return NONFINITE_G, f, g, zstate, b1t, b2t, nfev, njev, nhev
    if refresh and diagonal is not None:
        nhev += 1
        if not _copy_finite(d, diagonal(x, *bargs)):
            # x itself has finite f and g: it stays.
            return NONFINITE_H, f, g, zstate, b1t, b2t, nfev, njev, nhev
    elif refresh:
        # np.uint64(): from Python the kernel returns an int, which the next
        # call would type as int64 (signed shifts: another stream).
        zstate = np.uint64(draw(zstate, z, equilibration))
        # (hessp, not a literal None: the loop builds its functions into the
        # callee, which a literal would defeat, and the loop would not cache)
        hz = curvature_product(hessp, grad, x, z, g, bargs, fd_step)
        if hessp is None:
            nfev += gfev
            njev += 1
        else:
            nhev += 1
        if not curvature_sample(z, hz, equilibration, d):
            # x itself has finite f and g: it stays.
            status = NONFINITE_G if hessp is None else NONFINITE_H
            return status, f, g, zstate, b1t, b2t, nfev, njev, nhev
    # Bias corrections from running products (b ** t would round differently
    # in Python and in compiled code).
    b1t = b1t * b1
    b2t = b2t * b2
    _update(x, x_prev, g, m, v, d, lr, b1, b2, 1.0 - b1t, 1.0 - b2t, eps, power,
            equilibration, lb, ub)  # fmt: skip
    if not minibatch:
        f_new, g_new = fg(x, *bargs)
        nfev += 1
        njev += 1
        if not math.isfinite(f_new):
            copy_into(x, x_prev)
            return NONFINITE_F, f, g, zstate, b1t, b2t, nfev, njev, nhev
        if not all_finite(g_new):
            copy_into(x, x_prev)
            return NONFINITE_G, f, g, zstate, b1t, b2t, nfev, njev, nhev
        f = float(f_new)
        g = g_new
    return RUNNING, f, g, zstate, b1t, b2t, nfev, njev, nhev


def _ada_loop(
    fg, grad, hessp, diagonal, args, x, g, m, v, d, z, x_prev, x_best, g_best, lb, ub, perm,
    rng, fs, ns, nsteps, maxiter, n_updates, gtol, batch_size, do_shuffle,
    lr, b1, b2, eps, power, update_every, equilibration, gfev, fd_step,
):  # fmt: skip
    """Run AdaHessian updates until ``nsteps`` more are done or a stop test.

    ``perm`` None is full-data mode (resolved at compile time in the
    compiled loop).  State: ``x, m, v, d, z, x_prev`` in place, ``g``
    returned, ``rng = [batch state, z state]``, ``fs = [f, b1**t, b2**t,
    f_best, f_scale]``, ``ns = [nit, nfev, njev, nhev, pos, batches]``.
    The loop keeps the best iterate in ``x_best, g_best`` (value
    ``f_best``; in minibatch mode the lowest batch loss and its iterate)
    and returns to it, with status DIVERGED, when f exceeds ``f_best`` by
    more than ``_DIVERGENCE * max(|f_best|, f_scale)``,
    ``f_scale = max(|f(x0)|, 1)``.
    """
    f = float(fs[0])
    b1t = float(fs[1])
    b2t = float(fs[2])
    f_best = float(fs[3])
    f_scale = float(fs[4])
    nit = int(ns[0])
    nfev = int(ns[1])
    njev = int(ns[2])
    nhev = int(ns[3])
    pos = int(ns[4])
    batches = int(ns[5])
    bstate = rng[0]
    zstate = rng[1]
    stop_at = nit + nsteps
    status = RUNNING
    while True:
        if nit >= stop_at:
            break
        if perm is None:
            if inf_norm(g) <= gtol:
                status = SUCCESS
                break
        if nit >= maxiter:
            status = MAXITER
            break
        if batches >= n_updates:
            status = EPOCHS
            break
        refresh = nit % update_every == 0
        if perm is not None:
            # Like SGD: one update per minibatch, reshuffled every epoch.
            idx, pos, bstate, _ = next_batch(perm, pos, batch_size, bstate, do_shuffle)
            batches += 1
            res = ada_step(
                fg, grad, hessp, diagonal, x, f, g, m, v, d, z, x_prev, lb, ub,
                take_args(args, idx), True, refresh, zstate, b1t, b2t, lr, b1, b2, eps, power,
                equilibration, gfev, fd_step,
            )  # fmt: skip
        else:
            res = ada_step(
                fg, grad, hessp, diagonal, x, f, g, m, v, d, z, x_prev, lb, ub, args,
                False, refresh, zstate, b1t, b2t, lr, b1, b2, eps, power, equilibration, gfev,
                fd_step,
            )  # fmt: skip
        status, f, g, zstate, b1t, b2t, dfev, djev, dhev = res
        nfev += dfev
        njev += djev
        nhev += dhev
        if status != RUNNING:
            break
        # The divergence guard.  Full data: f, g are at the new x.  Minibatch:
        # f, g are the batch's at the iterate before the update (x_prev), the
        # only values the run sees; the same test on them catches a blow-up
        # (batch losses of a mean are on the full data's scale; of a sum,
        # smaller), one step late, and x_best is the iterate of the lowest
        # batch loss (issue 11).
        if f < f_best:
            f_best = f
            if perm is None:
                copy_into(x_best, x)
                copy_into(g_best, g)
            else:
                copy_into(x_best, x_prev)
        elif f - f_best > _DIVERGENCE * max(abs(f_best), f_scale):
            # Diverged (AdaHessian has no line search): back to the best
            # iterate, so nothing is lost, and say so (issue #3).  In
            # minibatch mode run() evaluates f, g there on the full data.
            copy_into(x, x_best)
            f = f_best
            g = g_best.copy()
            status = DIVERGED
            break
        nit += 1
    fs[0] = f
    fs[1] = b1t
    fs[2] = b2t
    fs[3] = f_best
    ns[0] = nit
    ns[1] = nfev
    ns[2] = njev
    ns[3] = nhev
    ns[4] = pos
    ns[5] = batches
    rng[0] = bstate
    rng[1] = zstate
    return status, g


_LOOP = LazyLoop(_ada_loop, 4, cache=True,
                 specialise={"ada_step": 4, "curvature_product": 2})  # fmt: skip


def run(obj, opts):
    r"""Minimize ``obj`` by AdaHessian (or ESGD with ``estimator="equilibration"``).

    Parameters
    ----------
    obj : fastopt._objective.Objective
        The problem. Curvature products come from ``obj.hessp``, else from
        the forward difference :math:`(\nabla f(x + e z) - \nabla f(x))/e`,
        :math:`e = \sigma(1 + \|x\|)/\|z\|`, :math:`\sigma` = ``fd_step`` (one
        ``obj.grad`` call). Minibatch mode
        (``obj.batch_size``): one update per minibatch, gradient and
        curvature on the batch, for ``obj.epochs`` epochs.
    opts : Options
        Method options (see :class:`Options`).

    Returns
    -------
    dict
        ``x, fun, jac, status, nit, nfev, njev, nhev`` (and ``allvecs``).
        ``fun``/``jac`` are on the full data (in minibatch mode one extra
        evaluation at the end; a callback sees the last batch's values).

    Notes
    -----
    The step is Adam's with the second moment of a curvature estimate in
    place of :math:`g^2` (see the module docstring); :math:`\epsilon` is
    added after the power, as in the AdaHessian reference code and
    torch-optimizer. :math:`v` is refreshed with a new estimate every
    ``update_every`` steps and updated with the latest estimate every step.
    ESGD averages :math:`(Hv)^2` arithmetically; here it is the exponential
    average with :math:`\beta_2`, bias-corrected, which converges to the
    same estimate. With bounds, ``x`` is projected (clipped) onto them after
    every step, as the first-order methods do.

    Without ``hessp`` the product is the forward difference
    :math:`(\nabla f(x + e z) - \nabla f(x))/e`,
    :math:`e = \sigma(1 + \|x\|)/\|z\|` with :math:`\sigma` = ``fd_step``
    (1e-4): with a finite-difference gradient (``jac=None``, rounding error
    about :math:`\sqrt{\epsilon_{mach}}|f|`) a :math:`\sqrt{\epsilon_{mach}}`
    step gave :math:`Hz` an error of order :math:`|f|` and the first step
    diverged (issue 11).

    With ``opts.diagonal`` the curvature :math:`D` is that function's
    Hessian diagonal (exact or Gauss-Newton) instead of a randomized
    estimate, entering :math:`v` squared as Hutchinson's does.

    Stops: :math:`\|g\|_\infty \le` ``gtol`` (full-data mode), ``maxiter``
    updates, ``obj.epochs`` epochs (minibatch mode), a non-finite value,
    gradient or curvature (the last finite iterate is returned), or a
    callback's StopIteration.  Also when f exceeds the best value seen by
    more than :math:`10^{10}\max(|f_{best}|, |f(x_0)|, 1)`: the run has
    diverged (status DIVERGED, ``success=False``) and the best iterate is
    returned.  In minibatch mode the test runs on the batch losses (the
    iterate with the lowest batch loss is returned, with its full-data
    ``fun`` and ``jac``).  There is no line search: a curvature sample near 0 makes the
    step :math:`\eta\,\hat m/\epsilon` (on Powell's singular function f
    went from 215 to :math:`10^{266}` and stayed there; the AdaHessian
    reference code, torch-optimizer and optax have no guard).  With
    ``obj.compiled`` the loop runs in nopython mode (one update per call
    with a callback or ``return_all``); in compiled mode ``hessp`` (or
    ``diagonal``) is evaluated once more before the loop, to check its
    output shape (counted in ``nhev``).

    References
    ----------
    .. [1] Z. Yao, A. Gholami, S. Shen, M. Mustafa, K. Keutzer and M. Mahoney,
       "ADAHESSIAN: An adaptive second order optimizer for machine
       learning", AAAI 2021.
    .. [2] Y. Dauphin, H. de Vries and Y. Bengio, "Equilibrated adaptive
       learning rates for non-convex optimization", NeurIPS 2015.
    .. [3] M. F. Hutchinson, "A stochastic estimator of the trace of the
       influence matrix for Laplacian smoothing splines", 1990.
    """
    validate(opts)
    args = tuple(obj.args)
    x = start_point(obj)
    n = x.shape[0]
    lb = np.full(n, -np.inf) if obj.lb is None else np.asarray(obj.lb, dtype=np.float64)
    ub = np.full(n, np.inf) if obj.ub is None else np.asarray(obj.ub, dtype=np.float64)
    np.clip(x, lb, ub, out=x)
    x0 = x.copy()
    minibatch = obj.batch_size is not None
    f, g, reused = start_fg(obj, x, args)
    bad = nonfinite_fg(f, g)
    if bad:
        return result(x, f, g, bad, 0, 1, 1, 0, [x0] if obj.return_all else None, reused)

    compiled = use_compiled(obj, opts.diagonal)
    nhev = 0
    hessp = diagonal = None
    if opts.diagonal is not None:
        diagonal, nhev = prepare_diagonal(opts.diagonal, compiled, x, args)
    elif obj.hessp is not None:
        hessp, nhev = prepare_product(obj.hessp, compiled, x, args, "hessp")
    if minibatch:
        perm, bstate, n_samples = batch_setup(obj, args, 0)
        batch_size = int(obj.batch_size)
        n_batches = -(-n_samples // batch_size)
        n_updates = 2**62 if obj.epochs is None else int(obj.epochs) * n_batches
    else:
        perm, bstate, batch_size, n_updates = None, np.uint64(0), 1, 2**62
    seed = opts.seed if opts.seed is not None else obj.seed
    zstate = seed_state(seed) ^ np.uint64(_Z_SALT)
    rng = np.array([bstate, zstate], dtype=np.uint64)
    m = np.zeros(n)
    v = np.zeros(n)
    d = np.zeros(n)
    z = np.zeros(n)
    x_prev = x.copy()
    x_best = x.copy()
    g_best = g.copy()
    fs = np.array([f, 1.0, 1.0, f, max(abs(f), 1.0)])
    ns = np.array([0, 1, 1, nhev, 0, 0], dtype=np.int64)
    loop, fns = _LOOP.select(compiled, obj.fg, obj.grad, hessp, diagonal)
    gfev = grad_fev(obj)
    equilibration = opts.estimator == "equilibration" and diagonal is None
    state = [g]

    def advance(nsteps):
        status, state[0] = loop(
            *fns, args, x, state[0], m, v, d, z, x_prev, x_best, g_best, lb, ub, perm, rng, fs, ns,
            nsteps, int(obj.maxiter), n_updates, float(obj.gtol), batch_size, bool(obj.shuffle),
            float(opts.learning_rate), float(opts.b1), float(opts.b2), float(opts.eps),
            float(opts.hessian_power), int(opts.update_every), equilibration, gfev,
            float(opts.fd_step),
        )  # fmt: skip
        return status

    def current():
        return x, float(fs[0]), state[0], int(ns[0])

    status, allvecs = drive(advance, current, obj, x0)
    f, g = float(fs[0]), state[0]
    nfev, njev = int(ns[1]), int(ns[2])
    if minibatch:
        # fun and jac of the result are on the full data.
        f, g = initial_fg(obj, x, args)
        nfev += 1
        njev += 1
    return result(x, f, g, status, ns[0], nfev, njev, ns[3], allvecs, reused)
