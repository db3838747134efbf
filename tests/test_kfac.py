"""Tests of K-FAC (``MLPClassifier/MLPRegressor(solver="kfac")``).

* the compiled statistics: loss and gradient equal :func:`mlp_fg`'s, the
  input factors :math:`\\bar A_l` a NumPy reference, and the output-derivative
  factors :math:`G_l` average (over sampled targets) to the exact
  :math:`\\frac1n\\sum_i J_i^T H_i J_i` of each layer's pre-activations;
* the proposal is :math:`(\\bar A \\otimes G)^{-1}` applied to the gradient;
* the rescaling's Gram matrix (forward-mode products only) equals the one
  from :func:`mlp_gn`'s exact Gauss-Newton products, and the fused iteration
  kernel gives what the separate kernels give;
* fits: K-FAC reaches a lower training loss than Adam in the same epochs,
  full batch and minibatch, classifier and regressor; refusals and errors.
"""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import softmax
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from fastopt.models import MLPClassifier, MLPRegressor, _kfac
from fastopt.models import _mlp_kernels as mk
from fastopt.models._kfac_kernels import (
    kfac_fg_stats,
    kfac_iteration,
    kfac_proposal,
    kfac_quadratic,
)

SIZES = (3, 4, 3)


def problem(n=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, SIZES[0]))
    Y = np.eye(SIZES[-1])[rng.integers(0, SIZES[-1], n)]
    w = rng.standard_normal(mk.n_params(SIZES, False))
    return X, Y, w


def test_statistics_gradient_and_input_factors():
    X, Y, w = problem()
    f, g, As, Gs = kfac_fg_stats(w, X, Y, SIZES, mk.TANH, mk.SOFTMAX, 0.1, len(X))
    f0, g0 = mk.mlp_fg(w, X, Y, SIZES, mk.TANH, mk.SOFTMAX, 0.1, 0.0, False)
    assert_allclose(f, f0, rtol=1e-14)
    assert_allclose(g, g0, rtol=1e-13, atol=1e-15)
    W0 = w[:12].reshape(3, 4)
    H = np.tanh(X @ W0 + w[12:16])
    for l, inp in enumerate([X, H]):
        B = np.column_stack([inp, np.ones(len(X))])
        assert_allclose(As[l], B.T @ B / len(X), rtol=1e-13)
    assert Gs[0].shape == (4, 4) and Gs[1].shape == (3, 3)
    f1, g1, A1, G1 = kfac_fg_stats(w, X, Y, SIZES, mk.TANH, mk.SOFTMAX, 0.1, 0)
    assert A1 == [] and G1 == [] and np.array_equal(g1, g)
    # statistics of the first 3 rows only (the paper's subset); same gradient
    f3, g3, A3, _ = kfac_fg_stats(w, X, Y, SIZES, mk.TANH, mk.SOFTMAX, 0.1, 3)
    B = np.column_stack([X[:3], np.ones(3)])
    assert_allclose(A3[0], B.T @ B / 3, rtol=1e-13)
    assert np.array_equal(g3, g)


def test_output_factors_are_the_fisher_on_average():
    # E over sampled targets of G_l = (1/n) sum_i J_i^T H_i J_i, with J_i the
    # Jacobian of the outputs w.r.t. layer l's pre-activations and H_i the
    # softmax Hessian diag(p) - p p^T
    X, Y, w = problem(n=4, seed=1)
    W0, b0, W1, b1 = w[:12].reshape(3, 4), w[12:16], w[16:28].reshape(4, 3), w[28:]
    H = np.tanh(X @ W0 + b0)
    P = softmax(H @ W1 + b1, axis=1)
    G1 = np.mean([np.diag(p) - np.outer(p, p) for p in P], axis=0)
    G0 = np.mean(
        [
            (W1 * (1 - h**2)[:, None])
            @ (np.diag(p) - np.outer(p, p))
            @ (W1 * (1 - h**2)[:, None]).T
            for h, p in zip(H, P, strict=True)
        ],
        axis=0,
    )
    mk.seed(0)
    reps = 4000
    S0, S1 = np.zeros((4, 4)), np.zeros((3, 3))
    for _ in range(reps):
        _, _, _, Gs = kfac_fg_stats(w, X, Y, SIZES, mk.TANH, mk.SOFTMAX, 0.0, len(X))
        S0 += Gs[0] / reps
        S1 += Gs[1] / reps
    assert np.max(np.abs(S1 - G1)) < 0.05 * np.max(np.abs(G1)) + 2e-3
    assert np.max(np.abs(S0 - G0)) < 0.05 * np.max(np.abs(G0)) + 2e-3


def test_proposal_is_the_kronecker_inverse():
    rng = np.random.default_rng(2)
    layers = _kfac._layer_slices(SIZES)
    g = rng.standard_normal(mk.n_params(SIZES, False))
    Ainv, Ginv, full = [], [], []
    for _, _, a, b in layers:
        MA = rng.standard_normal((a + 1, a + 1))
        MG = rng.standard_normal((b, b))
        Ai = _kfac._damped_inverse(MA @ MA.T, 0.3)
        Gi = _kfac._damped_inverse(MG @ MG.T, 0.2)
        assert_allclose(Ai @ (MA @ MA.T + 0.3 * np.eye(a + 1)), np.eye(a + 1), atol=1e-10)
        Ainv.append(Ai)
        Ginv.append(Gi)
        full.append(np.kron(Ai, Gi))
    D = kfac_proposal(g, _kfac.pack(Ainv, Ginv, np.float64), SIZES)
    D32 = kfac_proposal(g, _kfac.pack(Ainv, Ginv, np.float32), SIZES)
    assert D32.dtype == np.float64
    for (sw, sb, _, _), K in zip(layers, full, strict=True):
        vec = np.concatenate([g[sw], g[sb]])  # row-major (a + 1, b)
        step = -K @ vec
        assert_allclose(np.concatenate([D[sw], D[sb]]), step, rtol=1e-10, atol=1e-13)
        # single precision (the default): float32 rounding only
        assert_allclose(np.concatenate([D32[sw], D32[sb]]), step, rtol=1e-4,
                        atol=1e-5 * np.max(np.abs(step)))  # fmt: skip


@pytest.mark.parametrize("activation", [mk.RELU, mk.TANH])
@pytest.mark.parametrize("loss, K", [(mk.SOFTMAX, 3), (mk.LOGISTIC, 1), (mk.SQUARED, 2)])
def test_quadratic_is_the_gauss_newton_gram(activation, loss, K):
    # U (F + lam P + damping I) U^T from forward-mode products alone equals
    # the one from mlp_gn's exact Gauss-Newton products (R-op + backprop)
    rng = np.random.default_rng(4)
    for sizes in ((3, 5, 4, K), (3, K)):
        X = rng.standard_normal((7, 3))
        Y = rng.random((7, K))
        w = rng.standard_normal(mk.n_params(sizes, False))
        U = rng.standard_normal((2, w.size))
        Q = kfac_quadratic(w, U, X, sizes, activation, loss, 0.3, 0.7)
        ref = np.array([[U[i] @ (mk.mlp_gn(w, U[j], X, Y, sizes, activation, loss, 0.3, 0.0,
                                           False) + 0.7 * U[j])
                         for j in range(2)] for i in range(2)])  # fmt: skip
        assert_allclose(Q, ref, rtol=1e-12)
        assert_allclose(kfac_quadratic(w, U[:1], X, sizes, activation, loss, 0.3, 0.7),
                        ref[:1, :1], rtol=1e-12)  # fmt: skip


def test_iteration_is_the_separate_kernels():
    X, Y, w = problem(n=9, seed=5)
    rng = np.random.default_rng(5)
    pairs = zip(SIZES[:-1], SIZES[1:], strict=True)
    inv = rng.standard_normal(sum((a + 1) ** 2 + b * b for a, b in pairs))
    U = np.vstack([np.zeros_like(w), rng.standard_normal(w.size)])
    mk.seed(1)
    f, g, Q, As, Gs = kfac_iteration(w, U, 2, X, Y, SIZES, mk.TANH, mk.SOFTMAX, 0.1, 0.2, 5, 6,
                                     inv)  # fmt: skip
    mk.seed(1)
    f0, g0, A0, G0 = kfac_fg_stats(w, X, Y, SIZES, mk.TANH, mk.SOFTMAX, 0.1, 5)
    assert f == f0 and np.array_equal(g, g0)
    for a, b in zip(As + Gs, A0 + G0, strict=True):
        assert np.array_equal(a, b)
    assert_allclose(U[0], kfac_proposal(g, inv, SIZES), rtol=1e-14)
    assert_allclose(Q, kfac_quadratic(w, U, X[:6], SIZES, mk.TANH, mk.SOFTMAX, 0.1, 0.2),
                    rtol=1e-13)  # fmt: skip


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:600] / 16.0, y[:600]


def test_kfac_beats_adam_per_epoch(digits):
    X, y = digits
    common = dict(hidden_layer_sizes=(32,), batch_size=100, max_iter=8, n_iter_no_change=None,
                  random_state=0)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        kf = MLPClassifier(solver="kfac", **common).fit(X, y)
        ad = MLPClassifier(solver="adam", solver_options={"learning_rate": 1e-2}, **common).fit(
            X, y
        )
    assert len(kf.loss_curve_) == 8
    assert kf.loss_curve_[-1] < 0.5 * ad.loss_curve_[-1]
    assert kf.score(X, y) > 0.99
    assert kf.result_.success
    # a fixed random_state repeats the fit exactly (batch order, sampled targets)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        kf2 = MLPClassifier(solver="kfac", **common).fit(X, y)
    assert np.array_equal(kf.params_, kf2.params_)


def test_kfac_full_batch_and_regressor():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (200, 2))
    yv = np.sin(2 * X[:, 0]) * X[:, 1]
    reg = MLPRegressor((16,), activation="tanh", solver="kfac", batch_size=None, max_iter=150,
                       tol=1e-6, random_state=0)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X, yv)
    assert reg.score(X, yv) > 0.98
    assert reg.n_iter_ <= 150


@pytest.mark.parametrize("params, match", [
    ({"dropout": 0.2}, "neither dropout nor batch_norm"),
    ({"batch_norm": True}, "neither dropout nor batch_norm"),
    ({"solver_options": {"dampin": 1.0}}, "unknown option 'dampin'"),
    ({"solver_options": {"T3": 0}}, "T3 must be"),
    ({"solver_options": {"decay": 1.0}}, "decay must be"),
    ({"solver_options": {"stats_fraction": 0.0}}, "stats_fraction must be"),
    ({"solver_options": {"damping": -1.0}}, "damping must be"),
    ({"solver_options": {"stats_every": 0}}, "stats_every must be"),
    ({"solver_options": {"momentum": 1}}, "momentum must be a bool"),
    ({"solver_options": {"single_precision": "yes"}}, "single_precision must be a bool"),
])  # fmt: skip
def test_errors(params, match):
    X = np.random.default_rng(0).standard_normal((20, 3))
    y = np.arange(20) % 2
    with pytest.raises(ValueError, match=match):
        MLPClassifier((4,), solver="kfac", max_iter=2, **params).fit(X, y)


def test_kfac_warns_when_not_converged(digits):
    X, y = digits
    with pytest.warns(ConvergenceWarning, match="kfac"):
        MLPClassifier((8,), solver="kfac", max_iter=1, n_iter_no_change=None,
                      random_state=0).fit(X, y)  # fmt: skip


# --------------------------------------------------------------------------
# natural neural networks (PRONG): MLP(whiten=True)
# --------------------------------------------------------------------------


def natural_problem(seed=3):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((50, 3)) @ np.array([[2.0, 0.5, 0.0], [0.0, 1.0, 0.0], [1.0, 0, 0.1]])
    X += 3.0
    Y = np.eye(3)[rng.integers(0, 3, 50)]
    w = rng.standard_normal(mk.n_params(SIZES, False))
    return X, Y, w


def test_whitening_and_reparametrisation():
    from fastopt.models import _natural as nat

    X, Y, w = natural_problem()
    layers = _kfac._layer_slices(SIZES)
    eps = 1e-3
    Us, Uinvs, cs = nat.estimate(w, X, SIZES, mk.TANH, eps)
    # the whitened input has covariance diag(lambda / (lambda + eps))
    Z = (X - cs[0]) @ Us[0]
    e = np.linalg.eigvalsh(np.cov(X.T))
    assert_allclose(np.cov(Z.T), np.diag(e / (e + eps)), atol=1e-10)
    theta = nat.to_natural(w, layers, Uinvs, cs)
    assert_allclose(nat.to_canonical(theta, layers, Us, cs), w, rtol=1e-10, atol=1e-12)
    # the chain rule: gradient in theta of f(W(theta), b(theta))
    args = (X, Y, SIZES, mk.TANH, mk.SOFTMAX, 0.1, 0.0, False)

    def fth(t):
        return mk.mlp_fg(nat.to_canonical(t, layers, Us, cs), *args)[0]

    def gth(t):
        return nat.grad_to_natural(mk.mlp_fg(nat.to_canonical(t, layers, Us, cs), *args)[1],
                                   layers, Us, cs)  # fmt: skip

    from scipy.optimize import check_grad

    assert check_grad(fth, gth, theta) < 1e-6 * np.linalg.norm(gth(theta))


def test_whitening_input_eps():
    # whiten_input_eps regularises the first layer's whitening only
    from fastopt.models import _natural as nat
    from fastopt.models._kfac_kernels import layer_inputs

    X, Y, w = natural_problem()
    eps, eps0 = 0.3, 1e-3
    Us, _, cs = nat.estimate(w, X, SIZES, mk.TANH, eps, eps0)
    for H, U, c, e_l in zip(layer_inputs(w, X, SIZES, mk.TANH), Us, cs, (eps0, eps), strict=True):
        e = np.linalg.eigvalsh(np.cov(H.T))
        ew = np.linalg.eigvalsh(np.cov(((H - c) @ U).T))
        assert_allclose(ew, np.sort(e / (e + e_l)), atol=1e-10)
    # None: the same eps everywhere, as before the option
    a = nat.estimate(w, X, SIZES, mk.TANH, eps, None)
    b = nat.estimate(w, X, SIZES, mk.TANH, eps)
    for x, z in zip(a, b, strict=True):
        for u, v in zip(x, z, strict=True):
            assert_array_equal(u, v)


@pytest.mark.parametrize("input_eps", [None, 1e-4])
def test_whitening_keeps_the_function(input_eps):
    # learning rate 0 and a re-estimation before every update: the network
    # must come out exactly as it went in (up to rounding)
    X, y = load_digits(return_X_y=True)
    X, y = X[:300] / 16.0, y[:300]
    clf = MLPClassifier((16,), solver="sgd", solver_options={"learning_rate": 0.0},
                        whiten=True, whiten_every=1, whiten_eps=1e-3, batch_size=50,
                        whiten_input_eps=input_eps, max_iter=3, n_iter_no_change=None,
                        random_state=0)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    from sklearn.utils import check_random_state

    from fastopt.models._mlp import glorot_init

    w0 = glorot_init((64, 16, 10), "relu", False, check_random_state(0))
    assert_allclose(clf.params_, w0, rtol=1e-8, atol=1e-10)


def test_prong_sgd_beats_sgd():
    X, y = load_digits(return_X_y=True)
    X, y = X[:600] / 16.0, y[:600]
    common = dict(hidden_layer_sizes=(32,), solver="sgd", solver_options={"learning_rate": 0.05},
                  batch_size=50, max_iter=6, n_iter_no_change=None, random_state=0)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        plain = MLPClassifier(**common).fit(X, y)
        prong = MLPClassifier(whiten=True, whiten_every=20, **common).fit(X, y)
    assert prong.loss_curve_[-1] < 0.7 * plain.loss_curve_[-1]


@pytest.mark.parametrize("solver", ["sgd", "momentum", "nag", "adagrad", "rmsprop", "adadelta",
                                    "adam", "adamw", "adamax", "rprop"])  # fmt: skip
def test_whiten_with_every_first_order_rule(solver):
    X, y = load_digits(return_X_y=True)
    X, y = X[:200] / 16.0, y[:200]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier((8,), solver=solver, whiten=True, whiten_every=3, batch_size=50,
                            max_iter=2, random_state=0).fit(X, y)  # fmt: skip
    assert np.all(np.isfinite(clf.params_)) and len(clf.loss_curve_) == 2


@pytest.mark.parametrize("params, match", [
    ({"solver": "lbfgs"}, "needs a first-order solver"),
    ({"solver": "kfac"}, "needs a first-order solver"),
    ({"batch_norm": True}, "choose one"),
    ({"whiten_every": 0}, "whiten_every must be"),
    ({"whiten_eps": 0.0}, "whiten_eps must be"),
    ({"whiten_input_eps": 0.0}, "whiten_input_eps must be"),
    ({"whiten_input_eps": "1e-2"}, "whiten_input_eps must be"),
    ({"whiten_input_eps": True}, "whiten_input_eps must be"),
])  # fmt: skip
def test_whiten_errors(params, match):
    X = np.random.default_rng(0).standard_normal((20, 3))
    y = np.arange(20) % 2
    with pytest.raises(ValueError, match=match):
        MLPClassifier((4,), whiten=True, max_iter=2, **params).fit(X, y)
