"""Tests of :class:`fastopt.models.ConvNetClassifier` and its kernels.

* the gradient kernel against finite differences (``check_grad``);
* the forward pass, the loss and every gradient against torch's
  ``conv1d``/``conv2d``/``max_pool1d``/``max_pool2d`` with the same weights;
* scikit-learn's estimator checks;
* fits digits (2-D) and a 1-D task with several methods; bad input errors.

Shapes are kept few and small: every distinct number of layers compiles the
kernels once (cached on disk).
"""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.optimize import check_grad
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastopt.models import ConvNetClassifier
from fastopt.models import _conv_kernels as ck
from fastopt.models import _mlp_kernels as mk

try:  # torch only for the parity test: the rest runs without it (README command 2)
    import torch
except ImportError:
    torch = None

# (input (H, W), channels, layers (F, kh, kw, qh, qw), padding, dense hidden)
CASES = [
    ((1, 12), 2, [(3, 1, 3, 1, 2), (4, 1, 5, 1, 1)], "same", (5,)),
    ((6, 7), 1, [(3, 3, 3, 2, 2), (2, 2, 2, 1, 1)], "valid", (5,)),
    ((7, 6), 2, [(3, 3, 3, 2, 2), (4, 3, 3, 1, 1)], "same", ()),
]


def problem(case, n=7, K=3, seed=0):
    hw, C, layers, pad, hidden = case
    rng = np.random.default_rng(seed)
    geom, flat = ck.conv_geometry(hw, C, layers, pad)
    dense = (flat, *hidden, K)
    X = rng.standard_normal((n, hw[0] * hw[1] * C))
    Y = np.eye(K)[rng.integers(0, K, n)]
    w = 0.5 * rng.standard_normal(ck.n_params(geom, dense))
    return X, Y, geom, dense, w


@pytest.mark.parametrize("case", CASES)
def test_gradient_finite_differences(case):
    X, Y, geom, dense, w = problem(case)
    args = (X, Y, geom, dense, mk.SOFTMAX, 0.1, 0.0)
    err = check_grad(lambda v: ck.conv_fg(v, *args)[0], lambda v: ck.conv_fg(v, *args)[1], w)
    assert err <= 1e-6 * np.linalg.norm(ck.conv_fg(w, *args)[1])


def torch_net(case, geom, dense, w):
    """The same network in torch (channels-first), parameters from ``w``."""
    hw, C, layers, pad, hidden = case
    one_d = hw[0] == 1
    params, off = [], 0
    for g in geom:
        Cg, F, kh, kw = g[2], g[3], g[4], g[5]
        K = w[off : off + kh * kw * Cg * F].reshape(kh, kw, Cg, F).transpose(3, 2, 0, 1)
        K = K[:, :, 0, :] if one_d else K
        off += kh * kw * Cg * F
        params.append((torch.tensor(K, requires_grad=True),
                       torch.tensor(w[off : off + F], requires_grad=True)))  # fmt: skip
        off += F
    for a, b in zip(dense[:-1], dense[1:], strict=True):
        W = torch.tensor(w[off : off + a * b].reshape(a, b), requires_grad=True)
        off += a * b
        params.append((W, torch.tensor(w[off : off + b], requires_grad=True)))
        off += b
    F_ = torch.nn.functional

    def forward(Xt):
        A = Xt.reshape(Xt.shape[0], C, *((hw[1],) if one_d else hw))
        for (K, c), g in zip(params, geom, strict=False):
            ph, pw, qh, qw = g[6], g[7], g[10], g[11]
            if one_d:
                A = F_.relu(F_.conv1d(A, K, c, padding=pw))
                A = F_.max_pool1d(A, qw) if qw > 1 else A
            else:
                A = F_.relu(F_.conv2d(A, K, c, padding=(ph, pw)))
                A = F_.max_pool2d(A, (qh, qw)) if qh * qw > 1 else A
        # fastopt flattens channels-last
        H = A.permute(0, 2, 1) if one_d else A.permute(0, 2, 3, 1)
        H = H.reshape(H.shape[0], -1)
        for m, (W, b) in enumerate(params[len(geom) :]):
            H = H @ W + b
            if m < len(dense) - 2:
                H = F_.relu(H)
        return H

    return forward, params


@pytest.mark.skipif(torch is None, reason="torch is not installed (the parity extra)")
@pytest.mark.parametrize("case", CASES)
def test_matches_torch(case):
    X, Y, geom, dense, w = problem(case, seed=1)
    hw, C = case[0], case[1]
    # fastopt's input rows are channels-last; torch's channels-first
    Xt = X.reshape(len(X), hw[0], hw[1], C).transpose(0, 3, 1, 2).reshape(len(X), -1)
    forward, params = torch_net(case, geom, dense, w)
    O_t = forward(torch.tensor(Xt))
    assert_allclose(ck.conv_outputs(w, X, geom, dense), O_t.detach().numpy(), rtol=1e-10,
                    atol=1e-12)  # fmt: skip
    loss = torch.nn.functional.cross_entropy(O_t, torch.tensor(Y.argmax(1)))
    loss.backward()
    parts = []
    for j, (K, c) in enumerate(params):
        G = K.grad.numpy()
        if j < len(geom):  # torch (F, C, [kh,] kw) -> fastopt (kh, kw, C, F)
            G = G.transpose(2, 1, 0) if G.ndim == 3 else G.transpose(2, 3, 1, 0)
        parts += [G.ravel(), c.grad.numpy()]
    g_t = np.concatenate(parts)
    f, g = ck.conv_fg(w, X, Y, geom, dense, mk.SOFTMAX, 0.0, 0.0)
    assert_allclose(f, loss.item(), rtol=1e-12)
    assert_allclose(g, g_t, rtol=1e-9, atol=1e-12)


def test_dropout_is_inverted_and_seeded():
    X, Y, geom, dense, w = problem(CASES[0])
    args = (X, Y, geom, dense, mk.SOFTMAX, 0.0)
    mk.seed(3)
    f1, g1 = ck.conv_fg(w, *args, 0.5)
    mk.seed(3)
    f2, g2 = ck.conv_fg(w, *args, 0.5)
    assert f1 == f2 and np.array_equal(g1, g2)
    # the mean over masks of the dropped network's outputs is close to the
    # full network's loss (inverted scaling): a loose statistical check
    f0 = ck.conv_fg(w, *args, 0.0)[0]
    fs = [ck.conv_fg(w, *args, 0.5)[0] for _ in range(200)]
    assert f0 != f1 and abs(np.mean(fs) - f0) < 2.0 * f0


# --------------------------------------------------------------------------
# the estimator
# --------------------------------------------------------------------------


@parametrize_with_checks([ConvNetClassifier(conv_layers=((4, 3),), dense_layers=(16,),
                                            max_iter=50, solver_options={"learning_rate": 1e-2},
                                            random_state=0)])  # fmt: skip
def test_sklearn_api(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def test_fits_digits_2d(digits):
    X, y = digits
    clf = ConvNetClassifier(input_shape=(8, 8), conv_layers=((8, 3),), dense_layers=(32,),
                            batch_size=64, max_iter=10, solver_options={"learning_rate": 1e-2},
                            random_state=0)  # fmt: skip
    with pytest.warns(ConvergenceWarning):  # 10 epochs, no early stop: still learning
        clf.fit(X[:1200], y[:1200])
    assert clf.score(X[1200:], y[1200:]) > 0.92
    assert clf.filters_[0].shape == (8, 1, 3, 3)
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    P = clf.predict_proba(X[:5])
    assert_allclose(P.sum(1), 1.0)
    assert_allclose(np.log(P), clf.predict_log_proba(X[:5]), rtol=1e-10)


@pytest.mark.parametrize("solver", ["rmsprop", "lbfgs"])
def test_fits_1d_channels(solver):
    # two channels, channels-first rows: the class is which channel holds a bump
    rng = np.random.default_rng(0)
    n, L = 300, 16
    y = rng.integers(0, 2, n)
    X = 0.3 * rng.standard_normal((n, 2, L))
    pos = rng.integers(2, L - 2, n)
    X[np.arange(n), y, pos] += 2.0
    clf = ConvNetClassifier(input_shape=L, n_channels=2, conv_layers=((3, 3),),
                            dense_layers=(8,), solver=solver, max_iter=60, tol=1e-3,
                            random_state=0)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X.reshape(n, -1), y)
    assert clf.score(X.reshape(n, -1), y) > 0.95
    assert clf.filters_[0].shape == (3, 2, 3)
    assert clf.decision_function(X.reshape(n, -1)[:4]).shape == (4,)


@pytest.mark.parametrize("params, match", [
    ({"input_shape": (3, 3)}, "needs 9"),
    ({"n_channels": 0}, "n_channels must be"),
    ({"conv_layers": ((3,),)}, "conv_layers must be"),
    ({"conv_layers": ((3, (2, 2)),)}, "kernel_size must be"),
    ({"pool_size": 0}, "pool_size must be"),
    ({"padding": "full"}, "padding must be"),
    ({"solver": "hessian-free"}, "curvature products"),
    ({"solver": "lbfgs", "dropout": 0.5}, "dropout"),
    ({"padding": "valid", "conv_layers": ((2, 9),)}, "empty output"),
])  # fmt: skip
def test_parameter_errors(params, match):
    X = np.random.default_rng(0).standard_normal((10, 8))
    y = np.arange(10) % 2
    with pytest.raises(ValueError, match=match):
        ConvNetClassifier(**{"conv_layers": ((2, 3),), "dense_layers": (4,), **params}).fit(X, y)
