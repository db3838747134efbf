r"""K-FAC (Martens & Grosse 2015) for the multi-layer perceptrons: ``solver="kfac"``.

Each iteration on a minibatch (or the full data):

1. the Kronecker factors :math:`\bar A_l, G_l` of every layer's Fisher
   block, from a statistics pass every ``stats_every`` iterations (and the
   first three), folded into running averages with weight
   :math:`\epsilon = \min(1 - 1/k_s, \text{decay})`, :math:`k_s` the number
   of statistics passes;
2. every ``T3`` iterations (and the first three) the damped factors are
   inverted (Cholesky, LAPACK through scipy) with the factored Tikhonov
   damping of section 6.3,

   .. math::

       (\bar A_l + \pi_l \gamma I)^{-1}, \quad (G_l + \gamma/\pi_l\, I)^{-1},
       \qquad \pi_l = \sqrt{\frac{\operatorname{tr}(\bar A_l)/\dim \bar A_l}
                                 {\operatorname{tr}(G_l)/\dim G_l}};

3. one compiled pass (:func:`~._kfac_kernels.kfac_iteration`): the loss
   :math:`h`, the gradient :math:`\nabla h`, the proposal
   :math:`\Delta_l = -(\bar A_l + \pi_l\gamma I)^{-1}
   \nabla_{W_l} h\, (G_l + \gamma/\pi_l I)^{-1}` (bias rows included) and
   the Gram matrix of the damped quadratic model below;
4. rescaling (and optionally the paper's momentum, section 7):
   :math:`\delta = \alpha\Delta + \mu\delta_0` with :math:`\alpha, \mu`
   minimising :math:`M(\delta) = \frac12 \delta^T (F + \lambda I)\delta +
   \nabla h^T\delta` on the batch, :math:`F` the exact Gauss-Newton (=
   Fisher) matrix of the batch with the L2 term :math:`\eta`; the model
   needs only :math:`u^T F v = (Ju)^T H (Jv)`, so forward-mode products
   (one R-operator pass per direction, no back-propagation);
5. every ``T1`` iterations the Levenberg-Marquardt rule (section 6.5):
   :math:`\rho = (h(\theta + \delta) - h(\theta)) / M(\delta)` on the
   batch; :math:`\lambda \leftarrow \omega_1\lambda` if :math:`\rho > 3/4`,
   :math:`\lambda \leftarrow \lambda/\omega_1` if :math:`\rho < 1/4`, with
   :math:`\omega_1 = (19/20)^{T_1}`.

Differences from the paper: :math:`\gamma = \sqrt{\lambda + \eta}` is tied to
:math:`\lambda` (the paper's initial relation) instead of its separate greedy
search every ``T2`` iterations, which costs a set of inversions per
candidate; the minibatch size is fixed (the paper grows it); the statistics
are gathered every ``stats_every`` iterations (KFAC-pytorch's ``TCov``) in
the iteration's compiled pass, so they enter the averages after its proposal
and the next inversion uses them (the inverses are refreshed only every
``T3`` anyway); the proposal's products run in
float32; momentum is off by default (measured, see ``docs/algorithms/kfac.rst``).
"""

import numbers
import types
import warnings

import numpy as np
import scipy.linalg
from scipy.optimize import OptimizeResult
from sklearn.exceptions import ConvergenceWarning

from . import _mlp_kernels as mk
from ._base import Monitor, resolve_batch_size, seed_from
from ._kfac_kernels import kfac_fg_stats, kfac_iteration

#: options of ``solver="kfac"`` (``solver_options``) and their defaults
KFAC_OPTIONS = {
    # initial lambda (the paper's autoencoders used 150); measured on three
    # seeds, 1e-3 took 13-14 epochs on digits and 11 on MNIST-1D, 1e-2 16-17, 12-13
    "damping": 1e-3,
    "T1": 5,  # iterations between Levenberg-Marquardt updates of lambda
    "T3": 20,  # iterations between inversions of the damped factors
    # iterations between updates of the factors' running averages (the
    # statistics pass costs about as much as the gradient's; KFAC-pytorch's
    # TCov, 5 or 10 there)
    "stats_every": 5,
    "decay": 0.95,  # the running averages' maximum weight of the past
    # the paper's momentum; measured (benchmarks/kfac_compare.py), the
    # rescaling alone reached the target in as many or fewer epochs, costs one
    # R-operator pass less, and stayed stable with min_damping 1e-4
    "momentum": False,
    "min_damping": 1e-4,
    "max_damping": 1e8,
    # share of each minibatch (its first rows, in random order) on which the
    # factor statistics and the rescaling's curvature products are computed
    # (the paper's tau_1 = 1/8 for the statistics); the gradient uses it all
    "stats_fraction": 1.0,
    # the inverses stored and the proposal's two products per layer computed
    # in float32 (half the time of float64 BLAS here); the gradient, the
    # factors, the rescaling and the update stay float64
    "single_precision": True,
}


def _check_options(solver_options):
    opts = dict(KFAC_OPTIONS)
    for key, value in (solver_options or {}).items():
        if key not in KFAC_OPTIONS:
            raise ValueError(
                f"unknown option {key!r} of solver='kfac'; known: {sorted(KFAC_OPTIONS)}"
            )
        opts[key] = value
    for key in ("T1", "T3", "stats_every"):
        v = opts[key]
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"kfac option {key} must be an int >= 1; got {v!r}")
    for key in ("damping", "min_damping", "max_damping"):
        v = opts[key]
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not v > 0:
            raise ValueError(f"kfac option {key} must be a float > 0; got {v!r}")
    sf = opts["stats_fraction"]
    if isinstance(sf, bool) or not isinstance(sf, numbers.Real) or not 0 < sf <= 1:
        raise ValueError(f"kfac option stats_fraction must be in (0, 1]; got {sf!r}")
    for key in ("momentum", "single_precision"):
        if not isinstance(opts[key], (bool, np.bool_)):
            raise ValueError(f"kfac option {key} must be a bool; got {opts[key]!r}")
    d = opts["decay"]
    if isinstance(d, bool) or not isinstance(d, numbers.Real) or not 0 <= d < 1:
        raise ValueError(f"kfac option decay must be in [0, 1); got {d!r}")
    return opts


def _layer_slices(sizes):
    """``(W slice, bias slice, a, b)`` of every layer (no batch normalisation)."""
    out, off = [], 0
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        out.append((slice(off, off + a * b), slice(off + a * b, off + a * b + b), a, b))
        off += a * b + b
    return out


def _damped_inverse(M, d):
    """``(M + d I)^{-1}`` of a symmetric positive semi-definite ``M`` (Cholesky)."""
    S = M + d * np.eye(M.shape[0])
    try:
        c = scipy.linalg.cho_factor(S, lower=True, check_finite=False)
        return scipy.linalg.cho_solve(c, np.eye(S.shape[0]), check_finite=False)
    except np.linalg.LinAlgError:  # rounding made S indefinite: eigen-decomposition
        e, V = np.linalg.eigh(0.5 * (S + S.T))
        return (V / np.maximum(e, d)) @ V.T


def pack(Ainv, Ginv, dtype):
    """Every layer's ``Ainv[l]`` then ``Ginv[l]``, row-major, in one ``dtype`` vector.

    The layout :func:`~._kfac_kernels.kfac_proposal` reads.
    """
    return np.concatenate([m.ravel() for pair in zip(Ainv, Ginv, strict=True) for m in pair]
                          ).astype(dtype)  # fmt: skip


def report(est, solver, status, message, full_batch, early, final_gradient):
    """Warn (``ConvergenceWarning``) as :func:`~._base.fit_parameters` does.

    Statuses are :mod:`fastopt._status`'s; ``final_gradient()`` gives the
    full-data gradient for the test of a minibatch run without early stopping.
    """
    name = type(est).__name__
    if status in (3, 4, 5):
        warnings.warn(f"{name}: solver {solver!r} stopped: {message}",
                      ConvergenceWarning, stacklevel=4)  # fmt: skip
    elif status == 1 or (status == 6 and early):
        warnings.warn(
            f"{name}: solver {solver!r} did not converge in max_iter={est.max_iter} "
            f"{'iterations' if full_batch else 'epochs'}. Increase max_iter or loosen tol.",
            ConvergenceWarning, stacklevel=4,
        )  # fmt: skip
    elif status == 6:
        gnorm = float(np.max(np.abs(final_gradient())))
        if not gnorm <= est.tol:
            warnings.warn(
                f"{name}: solver {solver!r} did not converge in max_iter={est.max_iter} epochs: "
                f"the gradient inf-norm at the result is {gnorm:.3g} > tol={est.tol}.",
                ConvergenceWarning, stacklevel=4,
            )  # fmt: skip


def fit_kfac(est, w0, X, Y, sizes, activation, loss, lam, n_iter_no_change):
    """Run K-FAC from ``w0``; returns ``(res, monitor, n_iter)`` like ``fit_parameters``."""
    opts = _check_options(est.solver_options)
    n = X.shape[0]
    batch_size = resolve_batch_size(est.batch_size, "kfac", n)
    rng = np.random.default_rng(seed_from(est.random_state))
    early = n_iter_no_change if batch_size is not None else None
    monitor = Monitor(n, batch_size, int(est.max_iter), est.verbose, type(est).__name__,
                      tol=float(est.tol), n_iter_no_change=early)  # fmt: skip
    layers = _layer_slices(sizes)
    T1, T3, Ts = int(opts["T1"]), int(opts["T3"]), int(opts["stats_every"])
    ptype = np.float32 if opts["single_precision"] else np.float64
    use_momentum = bool(opts["momentum"])
    omega1 = (19.0 / 20.0) ** T1
    lmin, lmax = float(opts["min_damping"]), float(opts["max_damping"])
    damping = float(opts["damping"])
    w = np.array(w0, dtype=np.float64)
    # rows: the proposal Delta, the previous update delta0
    U = np.zeros((2, len(w)))
    delta0 = U[1]
    Abar = Gbar = None
    Ainv, Ginv = [None] * len(layers), [None] * len(layers)
    status, message = 6, "Completed the requested number of epochs."
    f = np.inf
    g = np.zeros_like(w)
    k = 0
    n_stats = 0
    n_batches = 1 if batch_size is None else -(-n // batch_size)
    total_steps = int(est.max_iter) * n_batches
    loss_args = (sizes, activation, loss, lam, 0.0, False)

    try:
        while k < total_steps:
            if batch_size is None:
                batches = [(X, Y)]
            else:
                perm = rng.permutation(n)
                batches = [
                    (X[perm[i : i + batch_size]], Y[perm[i : i + batch_size]])
                    for i in range(0, n, batch_size)
                ]
            for Xb, Yb in batches:
                k += 1
                m = max(1, int(np.ceil(float(opts["stats_fraction"]) * len(Xb))))
                stats = (k - 1) % Ts == 0 or k <= 3
                if Abar is None:  # the first proposal needs factors: a statistics pass
                    _, _, Abar, Gbar = kfac_fg_stats(w, Xb, Yb, sizes, activation, loss, lam, m)
                    n_stats, stats = 1, False
                if (k - 1) % T3 == 0 or k <= 3:
                    gamma = np.sqrt(damping + lam)
                    for l in range(len(layers)):
                        ta = np.trace(Abar[l]) / Abar[l].shape[0]
                        tg = np.trace(Gbar[l]) / Gbar[l].shape[0]
                        pi = np.sqrt(ta / tg) if ta > 0 and tg > 0 else 1.0
                        Ainv[l] = _damped_inverse(Abar[l], pi * gamma)
                        Ginv[l] = _damped_inverse(Gbar[l], gamma / pi)
                    inv = pack(Ainv, Ginv, ptype)
                # loss, gradient, proposal U[0] and the damped quadratic model's
                # Gram matrix Q = U (F + lam P + damping I) U^T of the batch
                # (U's rows: Delta and delta0), one forward pass
                mom = use_momentum and k > 1
                f, g, Q, As, Gs = kfac_iteration(w, U, 2 if mom else 1, Xb, Yb, sizes, activation,
                                                 loss, lam, damping, m if stats else 0, m,
                                                 inv)  # fmt: skip
                if not (np.isfinite(f) and np.all(np.isfinite(g))):
                    status = 3 if not np.isfinite(f) else 4
                    message = "NaN or inf in the objective or gradient; x is the last iterate."
                    raise StopIteration
                if batch_size is None and float(np.max(np.abs(g))) <= est.tol:
                    status, message = 0, "Optimization terminated successfully."
                    monitor(types.SimpleNamespace(nit=k, fun=f))
                    raise StopIteration
                if stats:
                    # running averages (the proposal above used the inverses of
                    # the previous ones; the next inversion uses these)
                    n_stats += 1
                    eps = min(1.0 - 1.0 / n_stats, float(opts["decay"]))
                    for l in range(len(layers)):
                        for bar, new in ((Abar[l], As[l]), (Gbar[l], Gs[l])):
                            bar *= eps
                            new *= 1.0 - eps
                            bar += new
                Delta = U[0]
                dCd = float(Q[0, 0])
                gD = float(g @ Delta)
                alpha, mu = (-gD / dCd if dCd > 0 else 0.0), 0.0
                if mom:
                    rhs = -np.array([gD, float(g @ delta0)])
                    try:
                        sol = np.linalg.solve(Q, rhs)
                        if np.all(np.isfinite(sol)):
                            alpha, mu = float(sol[0]), float(sol[1])
                    except np.linalg.LinAlgError:
                        pass
                delta = alpha * Delta
                if mu != 0.0:
                    delta += mu * delta0
                # at the optimum over span{Delta, delta0}: M(delta) = g.delta / 2
                Mval = 0.5 * float(g @ delta)
                w_new = w + delta
                if k % T1 == 0 and Mval < 0:
                    f_new = mk.mlp_loss(w_new, Xb, Yb, *loss_args)
                    rho = (f_new - f) / Mval if np.isfinite(f_new) else -np.inf
                    if rho > 0.75:
                        damping = max(damping * omega1, lmin)
                    elif rho < 0.25:
                        damping = min(damping / omega1, lmax)
                if not np.all(np.isfinite(w_new)):
                    status, message = 5, "The update produced NaN or inf; x is the last iterate."
                    raise StopIteration
                w = w_new
                delta0[:] = delta
                if monitor.verbose or batch_size is not None:
                    monitor(types.SimpleNamespace(nit=k, fun=f))
                if k >= total_steps:
                    break
        if batch_size is None:
            status, message = 1, "Maximum number of iterations has been exceeded."
    except StopIteration:
        if monitor.stopped_early:
            status, message = 99, "Stopped early: no improvement of tol in n_iter_no_change epochs."
    finally:
        monitor.close()
    res = OptimizeResult(x=w, fun=f, jac=g, nit=k, status=status, message=message,
                         success=status in (0, 6, 99), damping=damping)  # fmt: skip
    n_iter = k if batch_size is None else -(-k // n_batches)
    report(est, "kfac", status, message, batch_size is None, early is not None,
           lambda: kfac_fg_stats(w, X, Y, sizes, activation, loss, lam, 0)[1])  # fmt: skip
    return res, monitor, n_iter
