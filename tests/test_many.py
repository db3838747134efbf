"""Tests of :func:`fastopt.minimize_many`: K problems in one compiled call.

Each problem's result must be :func:`fastopt.minimize`'s on that problem
alone (same iterates: same x to the bit, same counts and status), with and
without bounds, for lbfgs and a first-order rule; a problem with NaN in its
data fails alone.  One module-level ``@njit`` objective (the decay fit of the
benchmarks) keeps compile time down; problems are few and small.
"""

import numba
import numpy as np
import pytest
from scipy.optimize import check_grad

import fastopt
from fastopt import _status


@numba.njit
def decay_fg(p, y, t):
    """Sum of squares of ``a exp(-b t) + c - y`` and its gradient."""
    a, b, c = p[0], p[1], p[2]
    e = np.exp(-b * t)
    r = a * e + c - y
    g = np.empty(3)
    g[0] = 2.0 * np.sum(r * e)
    g[1] = -2.0 * np.sum(r * a * t * e)
    g[2] = 2.0 * np.sum(r)
    return np.sum(r * r), g


@numba.njit
def decay_f(p, y, t):
    return decay_fg(p, y, t)[0]


@numba.njit
def decay_g(p, y, t):
    return decay_fg(p, y, t)[1]


T = np.linspace(0.0, 5.0, 50)


def _data(K, seed=0):
    rng = np.random.default_rng(seed)
    P = np.column_stack([rng.uniform(1, 3, K), rng.uniform(0.3, 2, K), rng.uniform(-0.5, 0.5, K)])
    Y = P[:, :1] * np.exp(-P[:, 1:2] * T) + P[:, 2:] + 0.01 * rng.standard_normal((K, T.size))
    return P, Y


P_TRUE, Y = _data(24)
Y[5, 7] = np.nan  # problem 5 has bad data
X0 = np.tile([1.0, 1.0, 0.0], (Y.shape[0], 1))


def test_objective_gradient():
    for p in ([1.0, 1.0, 0.0], [2.5, 0.3, -0.2]):
        err = check_grad(lambda v: decay_fg(v, Y[0], T)[0], lambda v: decay_fg(v, Y[0], T)[1],
                         np.array(p))  # fmt: skip
        assert err < 1e-5 * max(1.0, np.abs(decay_fg(np.array(p), Y[0], T)[1]).max())


CASES = [
    ("lbfgs", None, {"gtol": 1e-8}),
    ("lbfgs", [(0, None), (0, 1.0), (None, None)], {"gtol": 1e-8}),
    ("adam", None, {"learning_rate": 0.05, "maxiter": 400}),
    ("adam", [(0, 5), (0, 5), (-1, 1)], {"learning_rate": 0.05, "maxiter": 400}),
]


@pytest.mark.parametrize("method, bounds, options", CASES)
def test_each_problem_is_minimize_on_it_alone(method, bounds, options):
    res = fastopt.minimize_many(decay_fg, X0, args=(Y,), shared_args=(T,), method=method,
                                bounds=bounds, options=options)  # fmt: skip
    K = X0.shape[0]
    assert res.x.shape == res.jac.shape == (K, 3)
    for field in ("fun", "status", "nit", "nfev", "njev", "success"):
        assert res[field].shape == (K,)
    assert len(res.message) == K
    for k in range(K):
        ref = fastopt.minimize(decay_fg, X0[k], args=(Y[k], T), jac=True, method=method,
                               bounds=bounds, options=options)  # fmt: skip
        np.testing.assert_array_equal(res.x[k], ref.x)
        np.testing.assert_array_equal(res.jac[k], ref.jac)
        np.testing.assert_array_equal(res.fun[k], ref.fun)  # NaN == NaN here
        assert (res.nit[k], res.nfev[k], res.njev[k], res.status[k], res.success[k]) == (
            ref.nit, ref.nfev, ref.njev, ref.status, ref.success)  # fmt: skip
        assert res.message[k] == ref.message
    # the NaN row fails alone, with its own status
    assert res.status[5] == _status.NONFINITE_F and not res.success[5]
    assert np.delete(res.success, 5).all() or method == "adam"
    if method == "lbfgs" and bounds is not None:
        assert (res.x[:, 1] <= 1.0).all() and (res.x[:, 0] >= 0).all()


def test_fun_and_jac_separately_and_parallel_flag():
    a = fastopt.minimize_many(decay_f, X0[:6], args=(Y[:6],), shared_args=(T,), jac=decay_g)
    b = fastopt.minimize_many(decay_fg, X0[:6], args=(Y[:6],), shared_args=(T,),
                              parallel=True)  # fmt: skip
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.nfev, b.nfev)
    good = [k for k in range(6) if k != 5]
    np.testing.assert_allclose(b.x[good], P_TRUE[good], atol=0.1)


def test_bad_input():
    with pytest.raises(ValueError, match="X0 must be a 2-D array"):
        fastopt.minimize_many(decay_fg, X0[0], args=(Y,), shared_args=(T,))
    with pytest.raises(ValueError, match=r"args\[0\] must have one row per problem"):
        fastopt.minimize_many(decay_fg, X0, args=(Y[:3],), shared_args=(T,))
    with pytest.raises(TypeError, match="@njit fun"):
        fastopt.minimize_many(decay_fg.py_func, X0, args=(Y,), shared_args=(T,))
    with pytest.raises(TypeError, match="jac=True"):
        fastopt.minimize_many(decay_f, X0, args=(Y,), shared_args=(T,), jac=None)
    with pytest.raises(ValueError, match="does not run method 'scg'"):
        fastopt.minimize_many(decay_fg, X0, args=(Y,), shared_args=(T,), method="scg")
    with pytest.raises(ValueError, match="X0 must be finite"):
        bad = X0.copy()
        bad[2, 1] = np.nan
        fastopt.minimize_many(decay_fg, bad, args=(Y,), shared_args=(T,))
    with pytest.raises(ValueError, match="jac must return an array of shape"):
        fastopt.minimize_many(decay_fg, np.ones((3, 2)), args=(Y[:3],), shared_args=(T,))
