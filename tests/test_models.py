"""Tests of :mod:`fastopt.models`: kernels, scikit-learn's API, and the optimum.

* every gradient kernel against finite differences (``check_grad``), every
  Gauss-Newton product and diagonal against an explicit :math:`J^T H J` built
  on a tiny problem (style.md item 13);
* scikit-learn's own estimator checks (``parametrize_with_checks``);
* the convex models reach scikit-learn's optimum: coefficients to 1e-5
  relative on breast cancer, digits, diabetes, iris and
  ``make_classification(100000, 100)``;
* every method of :data:`fastopt.METHODS` fits through the estimators;
* bad input gets scikit-learn's errors or clear ones.

The kernels are cached on disk; the solver loops that call them compile once
per process (a few seconds each), which is most of this module's run time.
"""

import itertools
import subprocess
import sys
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.optimize import check_grad
from sklearn import linear_model, svm
from sklearn.datasets import (
    load_breast_cancer,
    load_diabetes,
    load_digits,
    load_iris,
    make_classification,
)
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import fastopt
from fastopt.models import (
    LinearRegression,
    LinearSVC,
    LogisticRegression,
    MLPClassifier,
    MLPRegressor,
)
from fastopt.models import _linear_kernels as lk
from fastopt.models import _mlp_kernels as mk

RNG = np.random.default_rng(0)


def rel(a, b):
    """Largest absolute difference relative to the largest entry of ``b``."""
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b)))


# --------------------------------------------------------------------------
# linear kernels: gradients, Gauss-Newton products and diagonals
# --------------------------------------------------------------------------

LINEAR_CASES = [
    # (loss, K, fit_intercept, s, penalize_b)
    *[(lk.SQUARED, K, fi, 1.0, False) for K in (1, 3) for fi in (True, False)],
    *[(lk.LOGISTIC, 1, fi, 1.0, False) for fi in (True, False)],
    *[(lk.SOFTMAX, 4, fi, 1.0, False) for fi in (True, False)],
    *[(lk.SQUARED_HINGE, K, fi, 1.7, True) for K in (1, 3) for fi in (True, False)],
]


def linear_problem(loss, K, fit_intercept, s, penalize_b, n=40, p=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    if loss == lk.LOGISTIC:
        Y = (rng.random((n, 1)) < 0.5).astype(float)
    elif loss == lk.SOFTMAX:
        Y = np.eye(K)[rng.integers(0, K, n)]
    elif loss == lk.SQUARED_HINGE:
        Y = np.where(rng.random((n, K)) < 0.5, -1.0, 1.0)
    else:
        Y = rng.standard_normal((n, K))
    args = (X, Y, 0.3, fit_intercept, s, penalize_b, loss)
    w = 0.5 * rng.standard_normal(p * K + (K if fit_intercept else 0))
    return w, args


def explicit_linear_gn(w, X, Y, lam, fit_intercept, s, penalize_b, loss):
    """:math:`J^T H J / n + \\lambda P` with J, H written out in full."""
    n, p = X.shape
    K = Y.shape[1]
    Xt = np.column_stack([X, s * np.ones(n)]) if fit_intercept else X
    J = np.kron(Xt, np.eye(K))  # rows (i, k), columns (j, k): w's layout
    Z = (J @ w).reshape(n, K)
    H = np.zeros((n * K, n * K))
    for i in range(n):
        z, y = Z[i], Y[i]
        if loss == lk.SOFTMAX:
            pr = np.exp(z - z.max())
            pr /= pr.sum()
            Hi = np.diag(pr) - np.outer(pr, pr)
        elif loss == lk.LOGISTIC:
            sg = 1.0 / (1.0 + np.exp(-z))
            Hi = np.diag(sg * (1.0 - sg))
        elif loss == lk.SQUARED_HINGE:
            Hi = np.diag(np.where(y * z < 1.0, 2.0, 0.0))
        else:
            Hi = np.eye(K)
        H[i * K : (i + 1) * K, i * K : (i + 1) * K] = Hi
    P = np.ones(w.shape[0])
    if fit_intercept and not penalize_b:
        P[p * K :] = 0.0
    return J.T @ H @ J / n + lam * np.diag(P)


@pytest.mark.parametrize("case", LINEAR_CASES, ids=lambda c: f"loss{c[0]}-K{c[1]}-b{int(c[2])}")
def test_linear_gradient(case):
    w, args = linear_problem(*case)
    err = check_grad(lambda v: lk.linear_fg(v, *args)[0], lambda v: lk.linear_fg(v, *args)[1], w)
    assert err < 1e-5 * max(1.0, np.abs(lk.linear_fg(w, *args)[1]).max())
    assert lk.linear_loss(w, *args) == lk.linear_fg(w, *args)[0]


@pytest.mark.parametrize("case", LINEAR_CASES, ids=lambda c: f"loss{c[0]}-K{c[1]}-b{int(c[2])}")
def test_linear_gauss_newton(case):
    w, args = linear_problem(*case, n=12, p=3)
    G = explicit_linear_gn(w, *args)
    Gk = np.column_stack([lk.linear_gn(w, e, *args) for e in np.eye(w.shape[0])])
    assert_allclose(Gk, G, rtol=1e-12, atol=1e-13)
    assert_allclose(lk.linear_gn_diag(w, *args), np.diag(G), rtol=1e-12, atol=1e-13)
    # for these losses (canonical links; the hinge away from its kink) the
    # Gauss-Newton matrix is the Hessian: compare with differences of gradients
    h = 1e-6
    Hfd = np.column_stack([
        (lk.linear_fg(w + h * e, *args)[1] - lk.linear_fg(w - h * e, *args)[1]) / (2 * h)
        for e in np.eye(w.shape[0])
    ])  # fmt: skip
    assert_allclose(Gk, Hfd, atol=1e-6)


def test_softmax_loss_no_overflow():
    w, args = linear_problem(lk.SOFTMAX, 4, True, 1.0, False)
    f, g = lk.linear_fg(1e4 * w, *args)
    assert np.isfinite(f) and np.all(np.isfinite(g))


def _softmax_reference(w, X, Y, lam, fit_intercept, s, penalize_b):
    """The softmax loss and gradient in plain NumPy (scipy's logsumexp)."""
    from scipy.special import logsumexp, softmax

    n, p = X.shape
    K = Y.shape[1]
    W = w[: p * K].reshape(p, K)
    b = w[p * K :] if fit_intercept else np.zeros(K)
    Z = X @ W + s * b
    pen = np.sum(W * W) + (np.sum(b * b) if penalize_b and fit_intercept else 0.0)
    f = np.mean(logsumexp(Z, axis=1) - np.sum(Y * Z, axis=1)) + 0.5 * lam * pen
    R = (softmax(Z, axis=1) - Y) / n
    gW = X.T @ R + lam * W
    gb = s * R.sum(axis=0) + (lam * b if penalize_b else 0.0)
    return f, np.concatenate([gW.ravel(), gb if fit_intercept else []])


@pytest.mark.parametrize("scale", [0.01, 1.0, 30.0])
@pytest.mark.parametrize("fit_intercept, s, penalize_b", [(True, 1.0, False), (False, 1.0, False),
                                                         (True, 2.5, True)])  # fmt: skip
def test_softmax_matches_numpy(scale, fit_intercept, s, penalize_b):
    # the fast softmax path (flat passes, own exponential) against NumPy, from
    # small scores to scores whose exponentials underflow
    rng = np.random.default_rng(1)
    n, p, K = 300, 7, 10
    X = rng.standard_normal((n, p))
    Y = np.eye(K)[rng.integers(0, K, n)]
    w = scale * rng.standard_normal(p * K + K * fit_intercept)
    args = (X, Y, 0.3, fit_intercept, s, penalize_b, lk.SOFTMAX)
    f, g = lk.linear_fg(w, *args)
    f_ref, g_ref = _softmax_reference(w, *args[:-1])
    assert f == pytest.approx(f_ref, rel=1e-13)
    assert_allclose(g, g_ref, rtol=1e-12, atol=1e-15 * np.abs(g_ref).max())


def test_fast_exponential_within_one_ulp():
    x = -np.concatenate([np.linspace(0.0, 708.0, 100001), np.geomspace(1e-300, 700.0, 1001),
                         RNG.random(10000) * 708.0])  # fmt: skip
    e = x.copy()
    lk._exp_nonpositive(e)
    ref = np.exp(x)
    assert np.all(np.abs(e - ref) <= np.spacing(ref))
    # below -708 the argument is clamped: e^-708, negligible beside a row sum >= 1
    low = np.array([-708.5, -745.0, -1e4, -np.inf])
    lk._exp_nonpositive(low)
    assert np.all(np.abs(low - np.exp(-708.0)) <= np.spacing(np.exp(-708.0)))


# --------------------------------------------------------------------------
# MLP kernels
# --------------------------------------------------------------------------

MLP_CASES = [
    (loss, K, act, bn, hidden)
    for (loss, K), act, bn, hidden in itertools.product(
        [(mk.SQUARED, 2), (mk.LOGISTIC, 1), (mk.SOFTMAX, 3)],
        ["relu", "tanh", "logistic", "identity"],
        [False, True],
        [(4,), (4, 3)],
    )
]


def mlp_problem(loss, K, act, bn, hidden, n=10, p=3, seed=0, dropout=0.0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    if loss == mk.LOGISTIC:
        Y = (rng.random((n, 1)) < 0.5).astype(float)
    elif loss == mk.SOFTMAX:
        Y = np.eye(K)[rng.integers(0, K, n)]
    else:
        Y = rng.standard_normal((n, K))
    sizes = (p, *hidden, K)
    args = (X, Y, sizes, mk.ACTIVATIONS[act], loss, 0.2, dropout, bn)
    w = rng.standard_normal(mk.n_params(sizes, bn))
    return w, args


def mlp_ids(c):
    return f"loss{c[0]}-{c[2]}-bn{int(c[3])}-{len(c[4])}layers"


def training_outputs(w, X, sizes, act, bn):
    """Outputs of the training-mode network (batch statistics) at ``w``, flat."""
    mean, var = mk.mlp_batch_stats(w, X, sizes, act, bn)
    return mk.mlp_predict(w, X, sizes, act, bn, mean, var).ravel()


def explicit_mlp_gn(w, X, Y, sizes, act, loss, lam, dropout, bn):
    n, K = Y.shape
    h = 1e-5
    J = np.column_stack([
        (training_outputs(w + h * e, X, sizes, act, bn)
         - training_outputs(w - h * e, X, sizes, act, bn)) / (2 * h)
        for e in np.eye(w.shape[0])
    ])  # fmt: skip
    O = training_outputs(w, X, sizes, act, bn).reshape(n, K)
    H = np.zeros((n * K, n * K))
    for i in range(n):
        if loss == mk.SOFTMAX:
            pr = np.exp(O[i] - O[i].max())
            pr /= pr.sum()
            Hi = np.diag(pr) - np.outer(pr, pr)
        elif loss == mk.LOGISTIC:
            sg = 1.0 / (1.0 + np.exp(-O[i]))
            Hi = np.diag(sg * (1.0 - sg))
        else:
            Hi = np.eye(K)
        H[i * K : (i + 1) * K, i * K : (i + 1) * K] = Hi
    P = np.zeros(w.shape[0])
    off = 0
    for l in range(len(sizes) - 1):
        a, b = sizes[l], sizes[l + 1]
        P[off : off + a * b] = 1.0
        off += a * b + (2 * b if (bn and l < len(sizes) - 2) else b)
    return J.T @ H @ J / n + lam * np.diag(P)


@pytest.mark.parametrize("case", MLP_CASES, ids=mlp_ids)
def test_mlp_gradient(case):
    w, args = mlp_problem(*case)
    err = check_grad(lambda v: mk.mlp_fg(v, *args)[0], lambda v: mk.mlp_fg(v, *args)[1], w)
    assert err < 2e-5 * max(1.0, np.abs(mk.mlp_fg(w, *args)[1]).max())
    assert_allclose(mk.mlp_loss(w, *args), mk.mlp_fg(w, *args)[0], rtol=1e-13)


def test_mlp_gradient_with_dropout():
    # the same seed draws the same masks: then the loss is a function of w
    w, args = mlp_problem(mk.SOFTMAX, 3, "tanh", True, (5, 4), dropout=0.4)

    def fg(v):
        mk.seed(7)
        return mk.mlp_fg(v, *args)

    assert check_grad(lambda v: fg(v)[0], lambda v: fg(v)[1], w) < 1e-5
    mk.seed(7)
    f1 = mk.mlp_fg(w, *args)[0]
    mk.seed(8)
    assert mk.mlp_fg(w, *args)[0] != f1  # the masks do change with the seed


@pytest.mark.parametrize("case", MLP_CASES, ids=mlp_ids)
def test_mlp_gauss_newton(case):
    w, args = mlp_problem(*case, n=8)
    G = explicit_mlp_gn(w, *args)
    Gk = np.column_stack([mk.mlp_gn(w, e, *args) for e in np.eye(w.shape[0])])
    assert_allclose(Gk, G, atol=1e-8 * np.abs(G).max())
    d = mk.mlp_gn_diag(w, *args)
    loss, K, act, bn, hidden = case
    n_out = hidden[-1] * K + K
    # Becker & LeCun: exact on the output layer always, and everywhere with a
    # diagonal output Hessian, one hidden layer and no batch normalisation
    assert_allclose(d[-n_out:], np.diag(G)[-n_out:], atol=1e-8 * np.abs(G).max())
    if len(hidden) == 1 and not bn and (loss != mk.SOFTMAX):
        assert_allclose(d, np.diag(G), atol=1e-8 * np.abs(G).max())
    assert np.all(d >= 0.0)


def test_mlp_predict_matches_training_mode_on_the_training_set():
    w, args = mlp_problem(mk.SOFTMAX, 3, "relu", True, (6, 5), n=30)
    X, Y, sizes, act, loss, lam, _, bn = args
    mean, var = mk.mlp_batch_stats(w, X, sizes, act, bn)
    O = mk.mlp_predict(w, X, sizes, act, bn, mean, var)
    # the loss of the inference outputs is the training-mode loss on all of X
    lse = np.log(np.exp(O - O.max(1, keepdims=True)).sum(1)) + O.max(1)
    data = np.mean(lse - (O * Y).sum(1))
    assert_allclose(mk.mlp_loss(w, *args[:5], 0.0, 0.0, bn), data, rtol=1e-12)


# --------------------------------------------------------------------------
# scikit-learn's estimator checks
# --------------------------------------------------------------------------


@parametrize_with_checks(
    [LinearRegression(), LogisticRegression(), LinearSVC(), MLPClassifier(), MLPRegressor()]
)
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


# --------------------------------------------------------------------------
# the optimum of the convex models
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def breast_cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def test_logistic_binary_matches_sklearn(breast_cancer):
    X, y = breast_cancer
    for C in (1.0, 0.05):
        ours = LogisticRegression(C=C, tol=1e-10).fit(X, y)
        ref = linear_model.LogisticRegression(C=C, tol=1e-10, max_iter=10000).fit(X, y)
        assert rel(ours.coef_, ref.coef_) < 1e-5
        assert_allclose(ours.intercept_, ref.intercept_, rtol=1e-5, atol=1e-7)
        assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-6)
        assert ours.coef_.shape == (1, X.shape[1]) and ours.intercept_.shape == (1,)


def test_logistic_multinomial_matches_sklearn():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    ours = LogisticRegression(C=1.0, tol=1e-10).fit(X, y)
    ref = linear_model.LogisticRegression(C=1.0, tol=1e-10, max_iter=10000).fit(X, y)
    assert ours.coef_.shape == (10, 64)
    assert rel(ours.coef_, ref.coef_) < 1e-5
    assert rel(ours.intercept_, ref.intercept_) < 1e-5
    assert abs(ours.intercept_.sum()) < 1e-10  # centred, as lbfgs from zero leaves them


def test_logistic_multinomial_raw_digits_matches_newton_cholesky():
    # On the raw pixels (0..16) scikit-learn's lbfgs stops on its f test
    # (ftol = 64 eps) with a gradient of 3e-8 and coefficients 1.5e-4 away
    # from the optimum; its newton-cholesky solver agrees with fastopt to 4e-7.
    X, y = load_digits(return_X_y=True)
    X = X.astype(float)
    # ill-conditioned: lbfgs needs about 15000 iterations (about 2 s) and ends
    # when rounding stops its line search, with a gradient of 1e-9 (scg:
    # about 4800 iterations); the models' lbfgs has no f test, which would
    # stop where scikit-learn's does
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = LogisticRegression(C=1.0, tol=1e-10, max_iter=20000).fit(X, y)
    ref = linear_model.LogisticRegression(C=1.0, tol=1e-12, max_iter=1000,
                                          solver="newton-cholesky").fit(X, y)  # fmt: skip
    assert rel(ours.coef_, ref.coef_) < 1e-5
    assert ours.result_.fun <= ours.loss_ + 1e-15


def test_ridge_matches_sklearn():
    X, y = load_diabetes(return_X_y=True)
    for alpha in (0.0, 0.1, 10.0):
        ours = LinearRegression(alpha=alpha, tol=1e-10).fit(X, y)
        ref = linear_model.Ridge(alpha=alpha).fit(X, y)
        assert rel(ours.coef_, ref.coef_) < 1e-5
        assert_allclose(ours.intercept_, ref.intercept_, rtol=1e-7)
    # two targets, no intercept
    Y = np.column_stack([y, np.sqrt(y)])
    ours = LinearRegression(alpha=1.0, fit_intercept=False, tol=1e-10).fit(X, Y)
    ref = linear_model.Ridge(alpha=1.0, fit_intercept=False).fit(X, Y)
    assert ours.coef_.shape == (2, 10) and rel(ours.coef_, ref.coef_) < 1e-5
    assert ours.predict(X).shape == (442, 2)


def test_linear_svc_matches_sklearn(breast_cancer):
    X, y = breast_cancer
    for C, s in ((1.0, 1.0), (0.1, 3.0)):
        ours = LinearSVC(C=C, intercept_scaling=s, tol=1e-10).fit(X, y)
        ref = svm.LinearSVC(C=C, intercept_scaling=s, dual=False, tol=1e-10,
                            max_iter=100000).fit(X, y)  # fmt: skip
        assert rel(ours.coef_, ref.coef_) < 1e-5
        assert_allclose(ours.intercept_, ref.intercept_, rtol=1e-5)
    X, y = load_iris(return_X_y=True)
    ours = LinearSVC(tol=1e-10).fit(X, y)
    ref = svm.LinearSVC(dual=False, tol=1e-12, max_iter=100000).fit(X, y)
    assert ours.coef_.shape == (3, 4) and rel(ours.coef_, ref.coef_) < 1e-5
    assert_allclose(ours.decision_function(X), ref.decision_function(X), atol=1e-5)


def test_logistic_large_matches_sklearn():
    # make_classification(100000, 100), weakly regularised: about 1 s here
    X, y = make_classification(100000, 100, random_state=0)
    ours = LogisticRegression(C=1e4, tol=1e-10).fit(X, y)
    ref = linear_model.LogisticRegression(C=1e4, tol=1e-10, max_iter=10000).fit(X, y)
    assert rel(ours.coef_, ref.coef_) < 1e-5
    assert_allclose(ours.intercept_, ref.intercept_, rtol=1e-5)


def test_default_solver_iteration_counts(breast_cancer):
    # pinned so that they cannot grow silently (scipy's test_cg)
    X, y = breast_cancer
    assert LogisticRegression().fit(X, y).n_iter_ <= 19
    Xd, yd = load_diabetes(return_X_y=True)
    assert LinearRegression(alpha=1.0).fit(Xd, yd).n_iter_ <= 12


def test_default_solver_is_lbfgs_with_the_models_options(breast_cancer):
    from fastopt.models import _base

    for cls in (LinearRegression, LogisticRegression, LinearSVC):
        assert cls().solver == "lbfgs"
    assert _base.resolve_batch_size("auto", "lbfgs", 10**6) is None  # full batch
    X, y = breast_cancer
    clf = LogisticRegression(tol=1e-8).fit(X, y)
    assert clf.result_.status == fastopt._status.SUCCESS  # tol, not an f test, ends it
    # solver_options override the models' lbfgs options
    loose = LogisticRegression(tol=1e-8, solver_options={"ftol": 1e-3}).fit(X, y)
    assert loose.result_.status == fastopt._status.FTOL and loose.n_iter_ < clf.n_iter_


def test_lbfgs_centred_beats_sklearn_lbfgs():
    # Same method, memory and line search as scikit-learn's lbfgs (scipy's
    # L-BFGS-B; tests/test_lbfgs.py follows it iterate for iterate), run in
    # centred coordinates: on the raw digits at C = 1e4 (issue 5's multinomial
    # target) tol=1e-4 stops in fewer iterations, at a lower loss, with the
    # gradient in the model's own parameters below tol (scikit-learn's test).
    X, y = load_digits(return_X_y=True)
    X = X.astype(float)
    ours = LogisticRegression(C=1e4).fit(X, y)
    ref = linear_model.LogisticRegression(C=1e4, max_iter=10000).fit(X, y)
    w = np.concatenate([ref.coef_.T.ravel(), ref.intercept_])
    Y = np.eye(10)[y]
    args = (X, Y, 1.0 / (1e4 * len(y)), True, 1.0, False, lk.SOFTMAX)
    f_ref = lk.linear_loss(w, *args)
    assert ours.n_iter_ < int(ref.n_iter_[0])
    assert ours.loss_ <= f_ref
    _, g = lk.linear_fg(ours.result_.x, *args)
    assert np.abs(g).max() <= 1e-4
    np.testing.assert_allclose(ours.result_.jac, g, rtol=1e-12, atol=1e-18)
    assert ours.loss_ == lk.linear_loss(ours.result_.x, *args)


@pytest.mark.parametrize("K", [1, 3])
@pytest.mark.parametrize("s", [1.0, 2.5])
@pytest.mark.parametrize("penalize_b", [False, True])
def test_centred_kernels(K, s, penalize_b):
    # from_centered is linear and invertible; centered_fg is linear_fg at
    # w(u) with the chain-rule gradient (checked by finite differences), and
    # centered_gn is the Gauss-Newton product T^T G T.
    rng = np.random.default_rng(K)
    n, p = 50, 4
    X = rng.standard_normal((n, p)) + np.array([5.0, -3.0, 0.0, 10.0])
    if K > 1:
        Y = np.eye(K)[rng.integers(0, K, n)]
    else:
        Y = rng.integers(0, 2, (n, 1)).astype(float)
    loss = lk.SOFTMAX if K > 1 else lk.LOGISTIC
    mu = X.mean(axis=0)
    args = (X, Y, 0.01, True, s, penalize_b, loss)
    u = rng.standard_normal(p * K + K)
    v = rng.standard_normal(p * K + K)
    w = lk.from_centered(u, mu, s)
    W, c = w[: p * K].reshape(p, K), w[p * K :]
    U, cu = u[: p * K].reshape(p, K), u[p * K :]
    np.testing.assert_allclose(X @ W + s * c, (X - mu) @ U + s * cu, rtol=1e-12, atol=1e-12)
    f, g = lk.centered_fg(u, *args, mu)
    assert f == lk.linear_loss(w, *args)
    err = check_grad(lambda t: lk.centered_fg(t, *args, mu)[0],
                              lambda t: lk.centered_fg(t, *args, mu)[1], u)  # fmt: skip
    assert err < 1e-6 * max(1.0, np.linalg.norm(g))
    np.testing.assert_allclose(lk.grad_from_centered(g, mu, s), lk.linear_fg(w, *args)[1],
                               rtol=1e-12, atol=1e-14)  # fmt: skip
    h = 1e-6
    fd = lk.centered_fg(u + h * v, *args, mu)[1] - lk.centered_fg(u - h * v, *args, mu)[1]
    fd /= 2 * h
    np.testing.assert_allclose(lk.centered_gn(u, v, *args, mu), fd, rtol=1e-5, atol=1e-7)
    # the diagonal of T'GT, column by column from the product
    full = np.column_stack([lk.centered_gn(u, e, *args, mu) for e in np.eye(u.shape[0])])
    np.testing.assert_allclose(lk.centered_gn_diag(u, *args, mu), np.diag(full), rtol=1e-10)
    # and with mu = 0 it is the model's own diagonal
    zero = np.zeros(p)
    np.testing.assert_array_equal(lk.centered_gn_diag(w, *args, zero), lk.linear_gn_diag(w, *args))


@pytest.mark.parametrize("solver", ["lbfgs", "scg", "hessian-free"])
def test_centred_fit_same_optimum(solver):
    # the centred coordinates move no optimum: on the raw (uncentred, badly
    # scaled) breast-cancer features a tight fit agrees with scikit-learn's
    # Newton solver (its lbfgs stops 1e-3 away there, on its f test).  1e-4:
    # rounding stops both of ours (status LINESEARCH) about 3e-5 relative
    # from it and from each other on the worst-conditioned coefficient.
    X, y = load_breast_cancer(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = LogisticRegression(C=1.0, tol=1e-12, max_iter=20000, solver=solver).fit(X, y)
    ref = linear_model.LogisticRegression(C=1.0, tol=1e-12, max_iter=1000,
                                          solver="newton-cholesky").fit(X, y)  # fmt: skip
    scale = np.abs(ref.coef_).max()
    assert_allclose(ours.coef_, ref.coef_, rtol=1e-4, atol=1e-6 * scale)
    assert_allclose(ours.intercept_, ref.intercept_, rtol=1e-4)


# --------------------------------------------------------------------------
# every fastopt method through the estimators
# --------------------------------------------------------------------------


@pytest.mark.parametrize("solver", fastopt.METHODS)
def test_every_method_fits(solver, breast_cancer):
    X, y = breast_cancer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)  # rprop's minibatch warning
        clf = LogisticRegression(solver=solver, max_iter=30, random_state=0).fit(X, y)
    assert clf.loss_ < np.log(2.0)  # below the loss at w = 0
    assert clf.score(X, y) > 0.9


@pytest.mark.parametrize("solver", ["hessian-free", "scg", "adahessian"])
def test_second_order_solvers_get_curvature(solver, breast_cancer):
    X, y = breast_cancer
    opts = {"learning_rate": 0.05} if solver == "adahessian" else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LogisticRegression(solver=solver, tol=1e-6, max_iter=3000, batch_size=None,
                                 solver_options=opts, random_state=0).fit(X, y)  # fmt: skip
    ref = linear_model.LogisticRegression(tol=1e-10, max_iter=10000).fit(X, y)
    # adahessian: Adam-like moments of the Gauss-Newton diagonal, a noise floor
    assert rel(clf.coef_, ref.coef_) < (1e-2 if solver == "adahessian" else 1e-3)
    if solver != "scg":  # scg: finite differences are its own product
        assert clf.result_.nhev > 0


def test_adahessian_uses_the_gauss_newton_diagonal(breast_cancer):
    # the models hand adahessian their exact Gauss-Newton diagonal (the
    # lecture's extra backward pass), so a full-batch fit draws no Hutchinson
    # vectors: random_state does not change it
    X, y = breast_cancer
    fits = [LogisticRegression(solver="adahessian", max_iter=30, batch_size=None,
                               solver_options={"learning_rate": 0.05},
                               random_state=seed).fit(X, y) for seed in (0, 1)]  # fmt: skip
    assert_allclose(fits[0].coef_, fits[1].coef_, rtol=0, atol=0)
    assert fits[0].result_.nhev > 0


def test_minibatch_fit_and_random_state(breast_cancer):
    X, y = breast_cancer
    a = LogisticRegression(solver="adam", batch_size=32, max_iter=20, random_state=1).fit(X, y)
    b = LogisticRegression(solver="adam", batch_size=32, max_iter=20, random_state=1).fit(X, y)
    c = LogisticRegression(solver="adam", batch_size=32, max_iter=20, random_state=2).fit(X, y)
    assert_allclose(a.coef_, b.coef_, rtol=0, atol=0)
    assert not np.array_equal(a.coef_, c.coef_)
    assert a.n_iter_ == 20  # epochs
    assert a.result_.nit == 20 * int(np.ceil(len(y) / 32))


def test_solver_options_reach_the_solver(breast_cancer):
    X, y = breast_cancer
    slow = LogisticRegression(solver="sgd", max_iter=5, batch_size=None,
                              solver_options={"learning_rate": 1e-6}).fit(X, y)  # fmt: skip
    fast = LogisticRegression(solver="sgd", max_iter=5, batch_size=None,
                              solver_options={"learning_rate": 1.0}).fit(X, y)  # fmt: skip
    assert fast.loss_ < slow.loss_


# --------------------------------------------------------------------------
# MLPs
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


@pytest.mark.parametrize("kw", [
    {}, {"dropout": 0.3}, {"batch_norm": True},
    {"activation": "tanh", "hidden_layer_sizes": (32, 32)},
    {"solver": "hessian-free", "max_iter": 15}, {"solver": "scg", "max_iter": 60},
    {"solver": "lbfgs", "max_iter": 60},
], ids=["default", "dropout", "batchnorm", "tanh-2layers", "hf", "scg", "lbfgs"])  # fmt: skip
def test_mlp_classifier_learns(kw, digits):
    X, y = digits
    kw = {"hidden_layer_sizes": (32,), "max_iter": 40, "random_state": 0, **kw}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(**kw).fit(X[:1200], y[:1200])
    assert clf.score(X[1200:], y[1200:]) > 0.88
    assert [c.shape for c in clf.coefs_][0] == (64, kw["hidden_layer_sizes"][0])
    if clf.result_.nit > clf.n_iter_:  # minibatch: one loss per epoch
        assert len(clf.loss_curve_) == clf.n_iter_


def test_mlp_batch_norm_predictions_are_per_row(digits):
    X, y = digits
    clf = MLPClassifier((16,), batch_norm=True, max_iter=5, random_state=0).fit(X[:300], y[:300])
    full = clf.predict_proba(X[:50])
    assert_allclose(clf.predict_proba(X[10:20]), full[10:20], rtol=1e-12)
    assert len(clf.bn_scale_) == 1 and clf.bn_mean_.shape == (1, 16)


def test_mlp_early_stopping(digits):
    X, y = digits
    clf = MLPClassifier((16,), max_iter=500, tol=10.0, n_iter_no_change=3,
                        random_state=0).fit(X[:400], y[:400])  # fmt: skip
    assert clf.n_iter_ == 4  # the first epoch sets the best loss, three more fail tol
    assert clf.result_.status == 99


def test_mlp_regressor_multi_output():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (300, 2))
    Y = np.column_stack([np.sin(3 * X[:, 0]), X[:, 0] * X[:, 1]])
    reg = MLPRegressor((32,), activation="tanh", solver="hessian-free", max_iter=40,
                       random_state=0).fit(X, Y)  # fmt: skip
    assert reg.predict(X).shape == (300, 2)
    assert reg.score(X, Y) > 0.98
    reg1 = MLPRegressor((8,), max_iter=5, random_state=0).fit(X, Y[:, 0])
    assert reg1.predict(X).shape == (300,)


def test_mlp_binary_uses_one_logistic_unit(breast_cancer):
    X, y = breast_cancer
    clf = MLPClassifier((8,), max_iter=20, random_state=0).fit(X, np.where(y, "yes", "no"))
    assert clf.coefs_[-1].shape == (8, 1) and clf.out_activation_ == "logistic"
    assert set(clf.predict(X)) <= {"yes", "no"} and clf.score(X, np.where(y, "yes", "no")) > 0.95
    assert_allclose(np.exp(clf.predict_log_proba(X)), clf.predict_proba(X), rtol=1e-12)


# --------------------------------------------------------------------------
# input handling and errors
# --------------------------------------------------------------------------

ALL = [LinearRegression, LogisticRegression, LinearSVC, MLPClassifier, MLPRegressor]
CLASSIFIERS = [LogisticRegression, LinearSVC, MLPClassifier]


@pytest.mark.parametrize("cls", ALL)
def test_nan_and_length_errors(cls):
    X = RNG.standard_normal((20, 3))
    y = np.arange(20) % 2
    Xn = X.copy()
    Xn[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        cls().fit(Xn, y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        cls().fit(X, y[:-1])
    with pytest.raises(NotFittedError):
        cls().predict(X)
    est = cls(max_iter=3).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        est.predict(X[:, :2])


@pytest.mark.parametrize("cls", CLASSIFIERS)
def test_labels(cls):
    X = RNG.standard_normal((30, 3))
    y = np.array(["cat", "dog", "emu"])[np.arange(30) % 3]
    est = cls(max_iter=5).fit(X, y)
    assert list(est.classes_) == ["cat", "dog", "emu"]
    assert set(est.predict(X)) <= set(y)
    with pytest.raises(ValueError, match="only one class"):
        cls().fit(X, np.full(30, "cat"))
    with pytest.raises(ValueError, match="Unknown label type"):
        cls().fit(X, RNG.standard_normal(30))


@pytest.mark.parametrize(("cls", "params", "match"), [
    (LogisticRegression, {"solver": "newton-cholesky"}, "Unknown method 'newton-cholesky'"),
    (LogisticRegression, {"C": 0.0}, "C must be a float > 0"),
    (LogisticRegression, {"max_iter": 0}, "max_iter must be an int >= 1"),
    (LogisticRegression, {"tol": -1.0}, "tol must be a float >= 0"),
    (LogisticRegression, {"batch_size": 0}, "batch_size must be 'auto', None or an int"),
    (LogisticRegression, {"solver_options": [1]}, "solver_options must be a dict"),
    (LinearRegression, {"alpha": -1.0}, "alpha must be a float >= 0"),
    (LinearSVC, {"intercept_scaling": 0.0}, "intercept_scaling must be a float > 0"),
    (MLPClassifier, {"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
    (MLPClassifier, {"activation": "softplus"}, "activation must be one of"),
    (MLPClassifier, {"hidden_layer_sizes": (10, 0)}, "hidden_layer_sizes must be"),
    (MLPRegressor, {"n_iter_no_change": 0}, "n_iter_no_change must be None or an int"),
    (LogisticRegression, {"solver": "adam", "solver_options": {"learning_rate": -1.0}},
     "Invalid learning_rate value: -1.0"),
])  # fmt: skip
def test_parameter_errors(cls, params, match):
    X = RNG.standard_normal((20, 3))
    y = np.arange(20) % 2
    with pytest.raises(ValueError, match=match):
        cls(**params).fit(X, y)


def test_unknown_solver_option_warns(breast_cancer):
    from scipy.optimize import OptimizeWarning

    X, y = breast_cancer
    with pytest.warns(OptimizeWarning, match="learning_rat"):
        LogisticRegression(solver="adam", max_iter=2, solver_options={"learning_rat": 1}).fit(X, y)


def test_convergence_warning(breast_cancer):
    X, y = breast_cancer
    with pytest.warns(ConvergenceWarning, match="did not converge in max_iter=2"):
        LogisticRegression(max_iter=2).fit(X, y)


def test_minibatch_convergence_warning():
    # issue 11 item 5: adam's default rate on the raw diabetes features ends
    # its 1000 epochs far from the optimum (R^2 < 0.2 against 0.52) and said
    # nothing; the full-data gradient test at the result now warns
    X, y = load_diabetes(return_X_y=True)
    with pytest.warns(ConvergenceWarning, match="gradient inf-norm at the result"):
        reg = LinearRegression(solver="adam", max_iter=200).fit(X, y)
    assert reg.score(X, y) < 0.2
    # a run that reaches the optimum within its epochs stays silent
    # (minibatch noise keeps the gradient near 0.02 here, hence tol=0.1)
    Xs = StandardScaler().fit_transform(X)
    ys = (y - y.mean()) / y.std()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        reg = LinearRegression(solver="adam", max_iter=300, tol=0.1,
                               solver_options={"learning_rate": 3e-3}).fit(Xs, ys)  # fmt: skip
    assert reg.score(Xs, ys) > 0.5
    # MLPs without early stopping: tested on the gradient without dropout
    with pytest.warns(ConvergenceWarning, match="gradient inf-norm at the result"):
        MLPRegressor((4,), max_iter=2, n_iter_no_change=None, dropout=0.5,
                     solver="adam", random_state=0).fit(Xs, ys)  # fmt: skip


def test_minibatch_fit_raises_no_optimizer_warning():
    # the estimators passed their tol to minimize as gtol in minibatch mode
    # too, and every minibatch fit printed minimize's "gtol is ignored in
    # minibatch mode": a warning about an option the user never set
    X, y = load_diabetes(return_X_y=True)
    Xs = StandardScaler().fit_transform(X)
    ys = (y - y.mean()) / y.std()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LinearRegression(solver="adam", max_iter=300, tol=0.1,
                         solver_options={"learning_rate": 3e-3}).fit(Xs, ys)  # fmt: skip
        MLPRegressor((4,), solver="adam", max_iter=30, tol=10.0, random_state=0).fit(Xs, ys)


def test_diverged_run_warns():
    # a diverging minibatch run (status DIVERGED or non-finite) is a failure too
    X, y = load_diabetes(return_X_y=True)
    with pytest.warns(ConvergenceWarning):
        LinearRegression(solver="sgd", max_iter=20,
                         solver_options={"learning_rate": 10.0}).fit(X * 100, y)  # fmt: skip


def test_verbose_progress_bar(capsys, breast_cancer):
    X, y = breast_cancer
    LogisticRegression(solver="adam", batch_size=64, max_iter=3, verbose=True).fit(X, y)
    out = capsys.readouterr().out
    # fastopt/_progress.py: tqdm's bar where installed, else a plain line
    assert "LogisticRegression: " in out and "3/3" in out and "epochs" in out and "loss" in out
    assert out.endswith("\n")


def test_import_fastopt_does_not_import_sklearn():
    code = "import sys, fastopt; assert 'sklearn' not in sys.modules, 'sklearn imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_first_fit_runs_the_python_driver_then_the_compiled_loop(monkeypatch):
    """A process's first fit of a kind runs lbfgs's Python driver (nothing
    compiled for the objective), the next the compiled loop: same result, bit for bit."""
    from fastopt.models import _base
    from fastopt.solvers import lbfgs

    modes = []
    select = lbfgs._LOOP.select

    def spy(compiled, *fns):
        modes.append(compiled)
        return select(compiled, *fns)

    monkeypatch.setattr(lbfgs._LOOP, "select", spy)
    monkeypatch.setattr(_base, "_FITTED", set())
    X, y = load_iris(return_X_y=True)
    first = LogisticRegression(C=10.0).fit(X, y)
    second = LogisticRegression(C=10.0).fit(X, y)
    assert modes == [False, True]
    np.testing.assert_array_equal(first.coef_, second.coef_)
    np.testing.assert_array_equal(first.intercept_, second.intercept_)
    assert (first.n_iter_, first.result_.nfev) == (second.n_iter_, second.result_.nfev)
