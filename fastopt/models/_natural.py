r"""Natural neural networks (PRONG, Desjardins et al. 2015) for the MLPs: ``whiten=True``.

Every dense layer :math:`A = H W + b` is reparametrised with a whitened
input,

.. math::

    A = (H - c)\, U\, V + d, \qquad W = U V, \quad b = d - c\, U V,

where :math:`c` is the mean of the layer's input :math:`H` and
:math:`U = E\,(\Lambda + \epsilon I)^{-1/2}` whitens it
(:math:`\Sigma = E \Lambda E^T` the input's covariance), so that
:math:`(H - c)U` has (nearly) identity covariance.  The optimizer (any
first-order rule of :mod:`fastopt.optim`) updates :math:`\theta = (V, d)`
with the gradient

.. math::

    \nabla_V f = U^T \left(\nabla_W f - c^T \nabla_b f\right), \qquad
    \nabla_d f = \nabla_b f

(the chain rule through :math:`W, b`; the objective, penalty included, is
the estimator's own :math:`f(W, b)`).  Every ``whiten_every`` updates
:math:`c, U` are re-estimated from a sample of the data and :math:`\theta`
is recomputed from the current :math:`(W, b)`,
:math:`V = U^{-1} W, \; d = b + c W`, so the network's function is unchanged
(exactly, up to rounding).  With :math:`U` whitening each layer's input, the
Fisher block of :math:`V` is closer to the identity (PRONG's argument: the
input covariance is one Kronecker factor of the Fisher, cf. K-FAC), so a
plain gradient step on :math:`\theta` approximates a natural-gradient step.

Differences from the paper: the whitening uses the input's mean and
covariance only, as the paper's PRONG does (its PRONG+, PRONG combined with
batch normalisation, is not offered); the optimizer's state (momentum,
moments) is kept across re-estimations; the sample is :data:`N_SAMPLES`
rows; and the first layer's :math:`\epsilon` (the network's input, the
data) may differ from the hidden layers' (``whiten_input_eps``; the paper
has one :math:`\epsilon`): the data's distribution does not move between
re-estimations, so its whitening stays exact, while a hidden layer's input
drifts, and its low-variance directions, scaled up by up to
:math:`1/\sqrt{\epsilon}`, with it.
"""

import numbers
import types

import numpy as np
from scipy.optimize import OptimizeResult

from .. import optim
from . import _mlp_kernels as mk
from ._base import Monitor, resolve_batch_size, seed_from
from ._kfac import _layer_slices, report
from ._kfac_kernels import layer_inputs

#: rows of the sample that each re-estimation of the whitening uses
N_SAMPLES = 1024


def check_whiten_params(est, method):
    """Validate ``whiten_every``, ``whiten_eps`` and ``whiten_input_eps``; returns them.

    ``whiten_input_eps=None`` comes back as ``whiten_eps``.
    """
    T = est.whiten_every
    if isinstance(T, bool) or not isinstance(T, numbers.Integral) or T < 1:
        raise ValueError(f"whiten_every must be an int >= 1; got {T!r}")
    eps = est.whiten_eps
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0:
        raise ValueError(f"whiten_eps must be a float > 0; got {eps!r}")
    eps0 = est.whiten_input_eps
    if eps0 is None:
        eps0 = eps
    elif isinstance(eps0, bool) or not isinstance(eps0, numbers.Real) or not eps0 > 0:
        raise ValueError(f"whiten_input_eps must be None or a float > 0; got {eps0!r}")
    if method not in optim.method_names():
        raise ValueError(
            f"whiten=True needs a first-order solver ({', '.join(optim.method_names())}); "
            f"got solver={est.solver!r}"
        )
    if est.batch_norm:
        raise ValueError("whiten=True and batch_norm=True: choose one (both re-centre inputs)")
    return int(T), float(eps), float(eps0)


def estimate(w, Xs, sizes, activation, eps, input_eps=None):
    """``(Us, Uinvs, cs)``: each layer's whitening of its input on the sample ``Xs``.

    ``eps`` regularises the hidden layers' inputs, ``input_eps`` (default
    ``eps``) the network's input, the first layer's.
    """
    Us, Uinvs, cs = [], [], []
    for l, H in enumerate(layer_inputs(w, Xs, sizes, activation)):
        c = H.mean(axis=0)
        D = H - c
        S = D.T @ D / max(len(H) - 1, 1)
        e, E = np.linalg.eigh(S)
        s = np.sqrt(np.maximum(e, 0.0) + (eps if l or input_eps is None else input_eps))
        Us.append(E / s)
        Uinvs.append(s[:, None] * E.T)
        cs.append(c)
    return Us, Uinvs, cs


def to_natural(w, layers, Uinvs, cs):
    r""":math:`\theta = (U^{-1} W, b + c W)` layer by layer."""
    theta = np.empty_like(w)
    for (sw, sb, a, b), Ui, c in zip(layers, Uinvs, cs, strict=True):
        W = w[sw].reshape(a, b)
        theta[sw] = (Ui @ W).ravel()
        theta[sb] = w[sb] + c @ W
    return theta


def to_canonical(theta, layers, Us, cs):
    r""":math:`(W, b) = (U V, d - c U V)` layer by layer."""
    w = np.empty_like(theta)
    for (sw, sb, a, b), U, c in zip(layers, Us, cs, strict=True):
        W = U @ theta[sw].reshape(a, b)
        w[sw] = W.ravel()
        w[sb] = theta[sb] - c @ W
    return w


def grad_to_natural(g, layers, Us, cs):
    r""":math:`(U^T (\nabla_W - c^T \nabla_b), \nabla_b)` layer by layer."""
    out = np.empty_like(g)
    for (sw, sb, a, b), U, c in zip(layers, Us, cs, strict=True):
        gb = g[sb]
        out[sw] = (U.T @ (g[sw].reshape(a, b) - np.outer(c, gb))).ravel()
        out[sb] = gb
    return out


def fit_natural(est, method, w0, X, Y, sizes, activation, loss, lam, dropout, nic):
    """Run ``method`` on the whitened parametrisation; returns ``(res, monitor, n_iter)``."""
    every, eps, eps0 = check_whiten_params(est, method)
    try:
        opt = optim.optimizer(method, **(est.solver_options or {}))
    except TypeError as exc:  # unknown option: scikit-learn's ValueError
        raise ValueError(str(exc)) from None
    n = X.shape[0]
    # the fit's kernel (no batch normalisation here), which _loss_value reuses
    fg = mk.fg_kernel(False, dropout)
    batch_size = resolve_batch_size(est.batch_size, method, n)
    rng = np.random.default_rng(seed_from(est.random_state))
    early = nic if batch_size is not None else None
    monitor = Monitor(n, batch_size, int(est.max_iter), est.verbose, type(est).__name__,
                      tol=float(est.tol), n_iter_no_change=early)  # fmt: skip
    layers = _layer_slices(sizes)
    n_batches = 1 if batch_size is None else -(-n // batch_size)
    total_steps = int(est.max_iter) * n_batches
    w = np.array(w0, dtype=np.float64)
    theta = state = Us = cs = None
    wk = w
    status, message = 6, "Completed the requested number of epochs."
    f, g = np.inf, np.zeros_like(w)
    k = 0
    try:
        while k < total_steps:
            if batch_size is None:
                batches = [(X, Y)]
            else:
                perm = rng.permutation(n)
                batches = [(X[perm[i : i + batch_size]], Y[perm[i : i + batch_size]])
                           for i in range(0, n, batch_size)]  # fmt: skip
            for Xb, Yb in batches:
                if k % every == 0:
                    if theta is not None:
                        w = to_canonical(theta, layers, Us, cs)
                        if not np.all(np.isfinite(w)):
                            w = wk
                            status = 5
                            message = "The update produced NaN or inf; x is the last iterate."
                            raise StopIteration
                    rows = rng.choice(n, N_SAMPLES, replace=False) if n > N_SAMPLES else None
                    Xs = X if rows is None else np.ascontiguousarray(X[np.sort(rows)])
                    Us, Uinvs, cs = estimate(w, Xs, sizes, activation, eps, eps0)
                    theta = to_natural(w, layers, Uinvs, cs)
                    if state is None:
                        state = opt.init(theta)
                wk = to_canonical(theta, layers, Us, cs)
                f, g = fg(wk, Xb, Yb, sizes, activation, loss, lam, dropout, False)
                if not (np.isfinite(f) and np.all(np.isfinite(g))):
                    status = 3 if not np.isfinite(f) else 4
                    message = "NaN or inf in the objective or gradient; x is the last iterate."
                    raise StopIteration
                w = wk
                k += 1
                if batch_size is None and float(np.max(np.abs(g))) <= est.tol:
                    status, message = 0, "Optimization terminated successfully."
                    raise StopIteration
                state = opt.step(theta, grad_to_natural(g, layers, Us, cs), state, value=f)
                if monitor.verbose or batch_size is not None:
                    monitor(types.SimpleNamespace(nit=k, fun=f))
                if k >= total_steps:
                    break
        w = to_canonical(theta, layers, Us, cs)
        if not np.all(np.isfinite(w)):
            status, message = 5, "The update produced NaN or inf; x is the last iterate."
            w = wk
        elif batch_size is None:
            status, message = 1, "Maximum number of iterations has been exceeded."
    except StopIteration:
        if monitor.stopped_early:
            w = to_canonical(theta, layers, Us, cs)
            status, message = 99, "Stopped early: no improvement of tol in n_iter_no_change epochs."
    finally:
        monitor.close()
    res = OptimizeResult(x=w, fun=f, jac=g, nit=k, status=status, message=message,
                         success=status in (0, 6, 99))  # fmt: skip
    n_iter = k if batch_size is None else -(-k // n_batches)
    report(est, method, status, message, batch_size is None, early is not None,
           lambda: fg(w, X, Y, sizes, activation, loss, lam, 0.0, False)[1])  # fmt: skip
    return res, monitor, n_iter
