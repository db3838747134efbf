"""Repeated ``minimize`` calls: a validated call runs again without validating (issue 11).

``fastopt._minimize`` keeps a plan per call signature (the ``@njit``
functions, method, options, ``tol``, ``x0``'s shape and dtype, the argument
types); a call that repeats one skips validation.  These tests hold a
repeated call to the same results as the validated one, and every input
that validation would reject or treat differently to the slow path.
"""

import warnings

import numba
import numpy as np
import pytest
import scipy.optimize
from objectives import quad_fg, rosen_fg

import fastopt
from fastopt import _minimize

FIELDS = ("x", "fun", "jac", "nit", "status", "success", "message")
#: options under which every method moves in a few steps
OPTS = {"maxiter": 5, "learning_rate": 1e-3}
SECOND_ORDER = ("scg", "lbfgs", "hessian-free", "adahessian")


def options(method):
    if method in SECOND_ORDER and method != "adahessian":
        return {"maxiter": 5}
    return dict(OPTS)


def same(a, b, counts=True):
    for k in FIELDS:
        if isinstance(a[k], np.ndarray):
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        else:
            assert a[k] == b[k], k
    if counts:
        assert (a.nfev, a.njev) == (b.nfev, b.njev)


def plans_of(fun):
    return [k for k in _minimize._PLANS if k[0] is fun]


@pytest.mark.parametrize("method", ["adam", "lbfgs", "scg", "nadam"])
def test_repeated_call_equals_validated_call(method):
    # every method, with a separate jac: test_contract.py's
    # test_repeated_call_equals_validated_call
    x0 = np.array([-1.2, 1.0])
    _minimize._PLANS.clear()
    first = fastopt.minimize(rosen_fg, x0, jac=True, method=method, options=options(method))
    reusable = method != "nadam"  # NAdam's scalar state lives in its optimizer
    assert len(plans_of(rosen_fg)) == int(reusable)
    second = fastopt.minimize(rosen_fg, x0, jac=True, method=method, options=options(method))
    third = fastopt.minimize(rosen_fg, x0, jac=True, method=method, options=options(method))
    # the validated call made one type-checking evaluation at x0 that a
    # repeated call does not need: the counts may differ by that one call
    same(first, second, counts=False)
    assert 0 <= first.nfev - second.nfev <= 1
    same(second, third)
    np.testing.assert_array_equal(x0, [-1.2, 1.0])  # the caller's x0 is untouched
    assert second.x is not third.x and second.jac is not third.jac


@pytest.mark.parametrize("method", ["adam", "lbfgs", "scg"])
def test_repeated_call_uses_new_args(method):
    rng = np.random.default_rng(0)
    M = rng.normal(size=(4, 4))
    A = M @ M.T + 4 * np.eye(4)
    opts = {"maxiter": 2000, "learning_rate": 0.05} if method == "adam" else {}
    for xs in (np.ones(4), np.arange(4.0), -np.ones(4)):
        res = fastopt.minimize(quad_fg, np.zeros(4), args=(A, xs), jac=True, method=method,
                               options=opts)  # fmt: skip
        assert res.success
        np.testing.assert_allclose(res.x, xs, atol=1e-4)
    assert len(plans_of(quad_fg)) >= 1


def test_repeated_call_checks_what_validation_checks():
    x0 = np.array([-1.2, 1.0])
    fastopt.minimize(rosen_fg, x0, jac=True, method="adam", options={"maxiter": 1})
    fastopt.minimize(rosen_fg, x0, jac=True, method="adam", options={"maxiter": 1})
    # a non-finite x0 is still a ValueError naming the element
    with pytest.raises(ValueError, match=r"x0\[1\]"):
        fastopt.minimize(rosen_fg, np.array([0.0, np.nan]), jac=True, method="adam",
                         options={"maxiter": 1})  # fmt: skip
    # an option equal in value but not in type takes the validating path
    with pytest.raises(ValueError, match="maxiter"):
        fastopt.minimize(rosen_fg, x0, jac=True, method="adam", options={"maxiter": True})
    # another length of x0: a new validated call (rosen_fg's gradient has 2 entries)
    with pytest.raises(ValueError, match="x0|length|shape"):
        fastopt.minimize(rosen_fg, np.zeros(3), jac=True, method="adam", options={"maxiter": 1})
    # float32 x0 runs in float32 as a first call does
    r32 = fastopt.minimize(rosen_fg, x0.astype(np.float32), jac=True, method="adam",
                           options={"maxiter": 1})  # fmt: skip
    assert r32.x.dtype == np.float32


def test_repeated_call_warns_every_time():
    x0 = np.array([-1.2, 1.0])
    for _ in range(3):
        with pytest.warns(Warning, match="Unknown solver options"):
            fastopt.minimize(rosen_fg, x0, jac=True, method="adam",
                             options={"maxiter": 1, "no_such_option": 1})  # fmt: skip
    # an unhashable option value: validated every time too
    for _ in range(2):
        with pytest.warns(Warning, match="Unknown solver options"):
            fastopt.minimize(rosen_fg, x0, jac=True, method="adam",
                             options={"maxiter": 1, "no_such_option": [1]})  # fmt: skip
    # a warning on every call: no plan for such a call
    assert not [k for k in plans_of(rosen_fg) if ("no_such_option", 1) in k[-2]]


def test_no_plan_for_python_functions_callbacks_or_bounds_objects():
    x0 = np.array([-1.2, 1.0])
    _minimize._PLANS.clear()
    fastopt.minimize(lambda x: (float(x @ x), 2 * x), x0, jac=True, method="adam",
                     options={"maxiter": 2})  # fmt: skip
    fastopt.minimize(rosen_fg, x0, jac=True, method="adam", callback=lambda x: None,
                     options={"maxiter": 2})  # fmt: skip
    fastopt.minimize(rosen_fg, x0, jac=True, method="lbfgs", options={"maxiter": 2},
                     bounds=scipy.optimize.Bounds([-2, -2], [2, 2]))  # fmt: skip
    fastopt.minimize(rosen_fg, x0, jac=True, method="lbfgs", bounds=[[-2, 2], [-2, 2]],
                     options={"maxiter": 2})  # fmt: skip
    assert not _minimize._PLANS


@pytest.mark.parametrize("method", ["lbfgs", "adam"])
def test_repeated_call_with_bounds(method):
    opts = {"maxiter": 200, "learning_rate": 0.01}
    for bounds, x0 in [([(-2, 0.5), (-2, 0.2)], [0.0, 0.0]), ([(-2, 0.5), (-2, 0.2)], [3.0, -5.0]),
                       ([(-2, 2), (-2, 2)], [0.0, 0.0])]:  # fmt: skip
        x0 = np.array(x0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lbfgs: learning_rate is unknown
            runs = [fastopt.minimize(rosen_fg, x0, jac=True, method=method, bounds=bounds,
                                     options=opts) for _ in range(3)]  # fmt: skip
        lb, ub = np.array(bounds, dtype=float).T
        for r in runs:
            assert np.all((r.x >= lb) & (r.x <= ub))
        same(runs[0], runs[1], counts=False)
        same(runs[1], runs[2])
        np.testing.assert_array_equal(x0, runs[0].x * 0 + x0)  # the caller's x0 untouched
    # the plan of the first box does not answer for the second
    b1 = fastopt.minimize(rosen_fg, np.zeros(2), jac=True, method="lbfgs",
                          bounds=[(-2, 0.5), (-2, 0.2)])  # fmt: skip
    b2 = fastopt.minimize(rosen_fg, np.zeros(2), jac=True, method="lbfgs",
                          bounds=[(-2, 2), (-2, 2)])  # fmt: skip
    assert b1.x[0] <= 0.5 and abs(b2.x[0] - 1.0) < 1e-4
    # a NaN x0 is still validated (clipping keeps the NaN)
    with pytest.raises(ValueError, match=r"x0\[0\]"):
        fastopt.minimize(rosen_fg, np.array([np.nan, 0.0]), jac=True, method="lbfgs",
                         bounds=[(-2, 0.5), (-2, 0.2)])  # fmt: skip


def test_repeated_call_keeps_last_good_iterate_on_nan():
    @numba.njit
    def fg(x):
        f = x @ x
        if x[0] < 0.5:  # NaN below 0.5: the run must stop at its last good point
            f = np.nan
        return f, 2 * x

    for _ in range(3):
        res = fastopt.minimize(fg, np.array([1.0, 1.0]), jac=True, method="sgd",
                               options={"learning_rate": 0.1, "maxiter": 50})  # fmt: skip
        assert not res.success
        assert np.all(np.isfinite(res.x)) and res.x[0] >= 0.5


def test_plan_cache_is_bounded():
    x0 = np.ones(2)
    for k in range(_minimize.GLUE_CACHE_SIZE + 5):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fastopt.minimize(rosen_fg, x0, jac=True, method="adam",
                             options={"maxiter": 1, "learning_rate": 1e-3 + k})  # fmt: skip
    assert len(_minimize._PLANS) <= _minimize.GLUE_CACHE_SIZE


@pytest.mark.parametrize("n", [3, 300])
def test_memo_compares_inputs_exactly(n):
    # fastopt._user._same_input: bytes up to 256 elements, the kernel above
    from fastopt._user import _same_input

    x = np.random.default_rng(0).normal(size=n)
    assert _same_input(x, x.copy())
    y = x.copy()
    y[-1] = np.nextafter(y[-1], np.inf)  # one ulp: another point
    assert not _same_input(x, y)
