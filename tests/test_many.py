"""Tests of :func:`fastopt.minimize_many`: K problems in one compiled call.

Each problem's result must be :func:`fastopt.minimize`'s on that problem
alone (same iterates: same x to the bit, same counts and status), with and
without bounds (shared or per problem), for every method (lbfgs, scg,
hessian-free and adahessian with ``hessp``, a first-order rule); a problem
with NaN in its data fails alone.  One module-level ``@njit`` objective (the decay fit of the
benchmarks) keeps compile time down; problems are few and small.
"""

import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest
from scipy.optimize import check_grad

import fastopt
from fastopt import _status


@numba.njit(cache=True)
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


@numba.njit(cache=True)
def decay_hessp(p, v, y, t):
    """The exact Hessian of :func:`decay_fg` times ``v``: 2 J'J v + 2 sum r (d2 r) v."""
    a, b = p[0], p[1]
    e = np.exp(-b * t)
    r = a * e + p[2] - y
    j1 = -a * t * e
    jv = e * v[0] + j1 * v[1] + v[2]
    rte = np.sum(r * t * e)
    out = np.empty(3)
    out[0] = 2.0 * np.sum(e * jv) - 2.0 * rte * v[1]
    out[1] = 2.0 * np.sum(j1 * jv) - 2.0 * rte * v[0] + 2.0 * a * np.sum(r * t * t * e) * v[1]
    out[2] = 2.0 * np.sum(jv)
    return out


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
    # the Hessian product against differences of the (checked) gradient
    rng = np.random.default_rng(1)
    for p in ([1.0, 1.0, 0.0], [2.5, 0.3, -0.2]):
        p = np.array(p)
        for _ in range(3):
            v = rng.standard_normal(3)
            h = 1e-6
            fd = (decay_fg(p + h * v, Y[0], T)[1] - decay_fg(p - h * v, Y[0], T)[1]) / (2 * h)
            np.testing.assert_allclose(decay_hessp(p, v, Y[0], T), fd, rtol=1e-6, atol=1e-6)


#: per-problem boxes: every third problem unbounded (L-BFGS there), the others boxed
PER_PROBLEM = np.tile([[0.0, np.inf], [0.0, 1.0], [-np.inf, np.inf]], (Y.shape[0], 1, 1))
PER_PROBLEM[::3] = [-np.inf, np.inf]
PER_PROBLEM[1::3, 1] = [0.0, 0.8]

CASES = [
    ("lbfgs", None, None, {"gtol": 1e-8}),
    ("lbfgs", None, [(0, None), (0, 1.0), (None, None)], {"gtol": 1e-8}),
    ("lbfgs", None, PER_PROBLEM, {"gtol": 1e-8}),
    ("adam", None, None, {"learning_rate": 0.05, "maxiter": 400}),
    ("adam", None, [(0, 5), (0, 5), (-1, 1)], {"learning_rate": 0.05, "maxiter": 400}),
    ("scg", decay_hessp, None, {}),
    ("hessian-free", decay_hessp, None, {}),
    ("adahessian", decay_hessp, PER_PROBLEM, {"maxiter": 100}),
]


def _bounds_of(bounds, k):
    """Problem ``k``'s bounds as :func:`fastopt.minimize` takes them."""
    return bounds[k] if isinstance(bounds, np.ndarray) else bounds


@pytest.mark.parametrize("method, hessp, bounds, options", CASES)
def test_each_problem_is_minimize_on_it_alone(method, hessp, bounds, options):
    res = fastopt.minimize_many(decay_fg, X0, args=(Y,), shared_args=(T,), method=method,
                                hessp=hessp, bounds=bounds, options=options)  # fmt: skip
    K = X0.shape[0]
    assert res.x.shape == res.jac.shape == (K, 3)
    for field in ("fun", "status", "nit", "nfev", "njev", "nhev", "success"):
        assert res[field].shape == (K,)
    assert len(res.message) == K
    for k in range(K):
        ref = fastopt.minimize(decay_fg, X0[k], args=(Y[k], T), jac=True, method=method,
                               hessp=hessp, bounds=_bounds_of(bounds, k),
                               options=options)  # fmt: skip
        np.testing.assert_array_equal(res.x[k], ref.x)
        np.testing.assert_array_equal(res.jac[k], ref.jac)
        np.testing.assert_array_equal(res.fun[k], ref.fun)  # NaN == NaN here
        assert (res.nit[k], res.nfev[k], res.njev[k], res.status[k], res.success[k]) == (
            ref.nit, ref.nfev, ref.njev, ref.status, ref.success)  # fmt: skip
        # minimize also counts its check of hessp before the loop (not on a bad start)
        checked = hessp is not None and ref.nfev > 1
        assert res.nhev[k] == getattr(ref, "nhev", 0) - checked
        assert res.message[k] == ref.message
    # the NaN row fails alone, with its own status
    assert res.status[5] == _status.NONFINITE_F and not res.success[5]
    assert np.delete(res.success, 5).all() or method in ("adam", "adahessian")
    if bounds is not None:
        box = np.array(bounds, dtype=float)  # None -> nan: no bound
        lb = np.nan_to_num(box[..., 0], nan=-np.inf)
        ub = np.nan_to_num(box[..., 1], nan=np.inf)
        assert (res.x >= lb).all() and (res.x <= ub).all()
    if hessp is not None:
        assert res.nhev[np.arange(K) != 5].min() > 0  # the products were used


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
    with pytest.raises(
        ValueError, match="method 'scg' does not support bounds; use method='lbfgs'"
    ):
        fastopt.minimize_many(decay_fg, X0, args=(Y,), shared_args=(T,), method="scg",
                              bounds=[(0, 1)] * 3)  # fmt: skip
    with pytest.raises(ValueError, match=r"must have shape \(24, 3, 2\)"):
        fastopt.minimize_many(decay_fg, X0, args=(Y,), shared_args=(T,), bounds=PER_PROBLEM[:3])
    bad = PER_PROBLEM.copy()
    bad[4, 2] = [1.0, 0.0]
    with pytest.raises(
        ValueError, match="problem 4's lower bound 1.0 > upper bound 0.0 at index 2"
    ):
        fastopt.minimize_many(decay_fg, X0, args=(Y,), shared_args=(T,), bounds=bad)
    bad[4, 2] = [np.nan, 0.0]
    with pytest.raises(ValueError, match="lower bound of problem 4 at index 2 is NaN"):
        fastopt.minimize_many(decay_fg, X0, args=(Y,), shared_args=(T,), bounds=bad)
    bad[4, 2] = [np.inf, np.inf]
    with pytest.raises(ValueError, match="lower bound of problem 4 at index 2 is inf"):
        fastopt.minimize_many(decay_fg, X0, args=(Y,), shared_args=(T,), bounds=bad)
    with pytest.raises(ValueError, match="upper bound at index 0 is -inf"):
        fastopt.minimize_many(decay_fg, X0, args=(Y,), shared_args=(T,),
                              bounds=[(-np.inf, -np.inf), (0, 1), (0, 1)])  # fmt: skip
    with pytest.raises(ValueError, match="at least one problem"):
        fastopt.minimize_many(decay_fg, X0[:0], args=(Y[:0],), shared_args=(T,))
    with pytest.raises(TypeError, match="@njit hessp"):
        fastopt.minimize_many(decay_fg, X0, args=(Y,), shared_args=(T,), method="scg",
                              hessp=decay_hessp.py_func)  # fmt: skip
    with pytest.raises(ValueError, match="X0 must be finite"):
        bad = X0.copy()
        bad[2, 1] = np.nan
        fastopt.minimize_many(decay_fg, bad, args=(Y,), shared_args=(T,))
    with pytest.raises(ValueError, match="jac must return an array of shape"):
        fastopt.minimize_many(decay_fg, np.ones((3, 2)), args=(Y[:3],), shared_args=(T,))


def test_per_problem_bounds_forms():
    from scipy.optimize import Bounds

    # Bounds with (K, n) sides is the same as the (K, n, 2) array; a shared
    # Bounds (1-D sides) the same as the sequence of pairs
    a = fastopt.minimize_many(decay_fg, X0[:6], args=(Y[:6],), shared_args=(T,),
                              bounds=PER_PROBLEM[:6])  # fmt: skip
    per = Bounds(PER_PROBLEM[:6, :, 0], PER_PROBLEM[:6, :, 1])
    b = fastopt.minimize_many(decay_fg, X0[:6], args=(Y[:6],), shared_args=(T,), bounds=per)
    np.testing.assert_array_equal(a.x, b.x)
    lists = fastopt.minimize_many(decay_fg, X0[:6], args=(Y[:6],), shared_args=(T,),
                                  bounds=PER_PROBLEM[:6].tolist())  # fmt: skip
    np.testing.assert_array_equal(a.x, lists.x)
    shared = [(0, None), (0, 1.0), (None, None)]
    c = fastopt.minimize_many(decay_fg, X0[:6], args=(Y[:6],), shared_args=(T,), bounds=shared)
    d = fastopt.minimize_many(decay_fg, X0[:6], args=(Y[:6],), shared_args=(T,),
                              bounds=Bounds([0, 0, -np.inf], [np.inf, 1.0, np.inf]))  # fmt: skip
    np.testing.assert_array_equal(c.x, d.x)
    # problem 1's box [0, 0.8] on b binds where the true rate is above it
    assert a.x[1, 1] == 0.8 or P_TRUE[1, 1] < 0.8


def test_inf_in_a_row_fails_that_problem_only():
    # (NaN in a row: the parametrized test above, for every method)
    Yn = Y[:4].copy()
    Yn[2, -1] = np.inf  # residual inf: f is inf at once
    res = fastopt.minimize_many(decay_fg, X0[:4], args=(Yn,), shared_args=(T,))
    ref = fastopt.minimize_many(decay_fg, X0[:4], args=(Y[:4],), shared_args=(T,))
    assert res.status[2] == _status.NONFINITE_F and not res.success[2]
    for k in (0, 1, 3):
        np.testing.assert_array_equal(res.x[k], ref.x[k])
        assert res.status[k] == ref.status[k]


@numba.njit(cache=True)
def decay_fg_short_late(p, y, calls, t):
    """:func:`decay_fg`, whose gradient has 1 entry from its 4th call on when ``y[0] > 50``."""
    calls[0] += 1
    f, g = decay_fg(p, y, t)
    if y[0] > 50.0 and calls[0] >= 4:
        return f, g[:1]
    return f, g


@pytest.mark.parametrize("bounds", [None, [(0.0, None), (0.0, None), (None, None)]])
def test_gradient_of_another_length_mid_run_fails_that_problem_only(bounds):
    # numba does no bounds checking: the L-BFGS loops call the user's
    # function without the checking glue and check the length themselves.  A
    # gradient whose length changes mid-run fails its problem alone (after
    # the first evaluation, which the start checks), not the whole call, and
    # is never read.
    Yb = Y[:4].copy()
    Yb[1, 0] = 100.0  # problem 1's gradient turns short
    calls = np.zeros((4, 1), dtype=np.int64)
    res = fastopt.minimize_many(decay_fg_short_late, X0[:4], args=(Yb, calls), shared_args=(T,),
                                bounds=bounds)  # fmt: skip
    assert res.status[1] == _status.GRADIENT_SHAPE and not res.success[1]
    assert "length" in res.message[1] or "shape" in res.message[1]
    assert res.nfev[1] == 4 and np.isfinite(res.x[1]).all()
    calls[:] = 0
    ref = fastopt.minimize_many(decay_fg, X0[:4], args=(Yb,), shared_args=(T,), bounds=bounds)
    for k in (0, 2, 3):
        np.testing.assert_array_equal(res.x[k], ref.x[k])
        assert res.status[k] == ref.status[k] and res.nfev[k] == ref.nfev[k]
    # at its start (its first call is the 4th): the start's check, that problem only
    calls[:] = 0
    calls[1] = 3
    res = fastopt.minimize_many(decay_fg_short_late, X0[:4], args=(Yb, calls), shared_args=(T,),
                                bounds=bounds)  # fmt: skip
    assert res.status[1] == _status.GRADIENT_SHAPE and res.nfev[1] == 1
    assert np.isnan(res.jac[1]).all() and (res.status[[0, 2, 3]] == ref.status[[0, 2, 3]]).all()
    # minimize on the problem alone: a ValueError, as for every method
    with pytest.raises(ValueError, match="another length"):
        fastopt.minimize(decay_fg_short_late, X0[1], args=(Yb[1], np.zeros(1, np.int64), T),
                         jac=True, method="lbfgs", bounds=bounds)  # fmt: skip


def test_no_array_is_leaked():
    # The chunk and the L-BFGS loops compile without reference counting; a
    # function they call that meets the user's arrays must count its own
    # (numba compiles a callee that sets no flag with its caller's: the
    # gradient of every evaluation once went unreleased).  numba's allocation
    # statistics, in a new process: they are on only if set before import.
    code = textwrap.dedent(
        """
        import numba, numpy as np, fastopt
        from numba.core.runtime import rtsys

        @numba.njit
        def decay_fg(p, y, t):  # (this module's, not imported: its cache entry is pytest's)
            e = np.exp(-p[1] * t)
            r = p[0] * e + p[2] - y
            g = np.array([2.0 * np.sum(r * e), -2.0 * np.sum(r * p[0] * t * e), 2.0 * np.sum(r)])
            return np.sum(r * r), g

        T = np.linspace(0.0, 5.0, 50)
        Y = np.outer(np.linspace(1, 3, 40), np.exp(-0.7 * T)) + 0.1
        X0 = np.tile([1.0, 1.0, 0.0], (40, 1))
        for bounds in (None, [(0.0, None), (0.0, None), (None, None)]):
            for parallel in (False, True):
                run = lambda: fastopt.minimize_many(decay_fg, X0, args=(Y,), shared_args=(T,),
                                                    bounds=bounds, parallel=parallel)
                run()
                a = rtsys.get_allocation_stats()
                run()
                b = rtsys.get_allocation_stats()
                assert b.alloc - a.alloc == b.free - a.free > 0, (bounds, parallel, a, b)
        print("ok")
        """
    )
    env = dict(os.environ, NUMBA_NRT_STATS="1", NUMBA_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=600)  # fmt: skip
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stdout + out.stderr
