"""Tests of :func:`fastopt.minimize`: scipy's contract, minibatches, the compiled driver.

Layout: the test objectives (every gradient checked with
``scipy.optimize.check_grad``), the result and option contract, callbacks,
bounds, bad input, non-finite values during a run, minibatches, the compiled
driver against the Python driver and the optimizer API, the scipy front end,
and convergence of every first-order method.

Compile time: numba compiles each user ``@njit`` function once per process,
and the compiled driver's loop once per (rule variant, user function).  The
jitted objectives below are therefore few and defined at module level: one
least-squares problem (``ls_f``/``ls_g``, plus ``ls_fg`` for ``jac=True``)
whose two scalar arguments switch a NaN in ``fun`` or an inf in ``jac`` on
past a threshold, so the same compiled loops serve the deterministic,
minibatch and non-finite tests; and the compiled tests use four rule variants
(adam, nag, irprop-, rmsprop) while the Python driver covers all of them.
"""

import math
import re
import warnings

import numba
import numpy as np
import pytest
import scipy.optimize
from scipy.optimize import Bounds, OptimizeResult, OptimizeWarning, check_grad, rosen, rosen_der

import fastopt
from fastopt import schedules
from fastopt._methods import get_method
from fastopt.rules import KERNEL_TABLE

FIRST_ORDER = [m for m in fastopt.METHODS if get_method(m).kind == "first-order"]
EXPECTED_FIRST_ORDER = set(
    "sgd momentum nag rprop adagrad rmsprop adadelta adam adamw adamax nadam radam".split()
)

# --------------------------------------------------------------------------
# Test objectives
# --------------------------------------------------------------------------
# A convex quadratic 0.5 x'Ax - b'x with a non-diagonal A (eigenvalues 0.71,
# 1.65, 3.64), minimised at x* = A^-1 b.
A_Q = np.array([[3.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 1.0]])
B_Q = np.array([1.0, -1.0, 2.0])
X_Q = np.linalg.solve(A_Q, B_Q)


def quad_f(x):
    return 0.5 * x @ A_Q @ x - B_Q @ x


def quad_g(x):
    return A_Q @ x - B_Q


def quad_fg(x):
    return quad_f(x), quad_g(x)


# A separable quadratic sum(D (x - C)^2) / 2: with bounds its minimiser is
# clip(C, lb, ub), which makes the projection testable exactly.
D_S = np.array([1.0, 4.0, 10.0])
C_S = np.array([1.0, -2.0, 0.5])


def sep_f(x):
    d = x - C_S
    return 0.5 * float(np.sum(D_S * d * d))


def sep_g(x):
    return D_S * (x - C_S)


# Least squares on N_LS samples: fun is the *mean* loss over the rows it is
# given, as minibatch mode requires.  ``fbad``/``gbad``: fun returns NaN when
# w[0] > fbad, jac puts an inf in when w[0] > gbad (np.inf: never).
N_LS = 40
_rng = np.random.default_rng(1234)
X_LS = _rng.standard_normal((N_LS, 3))
W_TRUE = np.array([1.0, -2.0, 0.5])
Y_LS = X_LS @ W_TRUE + 0.1 * _rng.standard_normal(N_LS)
W_LS = np.linalg.lstsq(X_LS, Y_LS, rcond=None)[0]  # the full-data minimiser
LS_ARGS = (X_LS, Y_LS, np.inf, np.inf)
BAD_AT = 0.5  # w[0] crosses 0.5 on the way from 0 to W_LS[0] ~ 1


@numba.njit
def ls_f(w, X, y, fbad, gbad):
    if w[0] > fbad:
        return np.nan
    r = X @ w - y
    return 0.5 * np.mean(r * r)


@numba.njit
def ls_g(w, X, y, fbad, gbad):
    r = X @ w - y
    g = X.T @ r / y.shape[0]
    if w[0] > gbad:
        g[1] = np.inf
    return g


@numba.njit
def ls_fg(w, X, y, fbad, gbad):
    return ls_f(w, X, y, fbad, gbad), ls_g(w, X, y, fbad, gbad)


# the same functions as plain Python (NumPy): the Python driver's objective
py_ls_f, py_ls_g = ls_f.py_func, ls_g.py_func


def py_ls_fg(w, X, y, fbad, gbad):
    return py_ls_f(w, X, y, fbad, gbad), py_ls_g(w, X, y, fbad, gbad)


def _ls_data(w, X, y):
    return py_ls_f(w, X, y, np.inf, np.inf)


def _ls_data_g(w, X, y):
    return py_ls_g(w, X, y, np.inf, np.inf)


GRAD_CHECKS = {
    "quadratic": (quad_f, quad_g, 3, ()),
    "quadratic_fg": (lambda x: quad_fg(x)[0], lambda x: quad_fg(x)[1], 3, ()),
    "separable": (sep_f, sep_g, 3, ()),
    "rosenbrock": (rosen, rosen_der, 2, ()),
    "least_squares": (py_ls_f, py_ls_g, 3, LS_ARGS),
    "least_squares_jit": (ls_f, ls_g, 3, LS_ARGS),
    "least_squares_fg_jit": (lambda *a: ls_fg(*a)[0], lambda *a: ls_fg(*a)[1], 3, LS_ARGS),
}


@pytest.mark.parametrize("name", GRAD_CHECKS)
def test_objective_gradients(name):
    f, g, n, args = GRAD_CHECKS[name]
    rng = np.random.default_rng(7)
    for _ in range(3):
        x = rng.uniform(-0.4, 0.4, n)  # below BAD_AT: the finite region
        gx = g(x, *args)
        err = check_grad(f, g, x, *args)
        assert err <= 1e-5 * max(1.0, np.linalg.norm(gx)), (name, x, err)
    if name.startswith("least_squares"):
        # the switches: NaN in fun / inf in jac past the threshold only
        x = np.array([0.6, 0.0, 0.0])
        assert math.isnan(f(x, X_LS, Y_LS, BAD_AT, np.inf))
        assert np.all(np.isfinite(g(x, X_LS, Y_LS, BAD_AT, np.inf)))
        assert np.isinf(g(x, X_LS, Y_LS, np.inf, BAD_AT)).sum() == 1
        assert np.isfinite(f(x, X_LS, Y_LS, np.inf, BAD_AT))


def test_minimisers_of_test_objectives():
    np.testing.assert_allclose(quad_g(X_Q), 0.0, atol=1e-14)
    np.testing.assert_allclose(py_ls_g(W_LS, *LS_ARGS), 0.0, atol=1e-14)
    np.testing.assert_array_equal(rosen_der(np.ones(2)), 0.0)


def _recording(fun):
    """Wrap ``fun`` to record a copy of every x it is called with."""
    seen = []

    def wrapped(x, *args):
        seen.append(np.array(x, copy=True))
        return fun(x, *args)

    return wrapped, seen


# --------------------------------------------------------------------------
# The result and the registry
# --------------------------------------------------------------------------
def test_methods_registry_lists_every_first_order_method():
    assert isinstance(fastopt.METHODS, tuple)
    assert EXPECTED_FIRST_ORDER <= set(fastopt.METHODS)
    assert set(FIRST_ORDER) == EXPECTED_FIRST_ORDER
    assert len(set(fastopt.METHODS)) == len(fastopt.METHODS)
    for m in fastopt.METHODS:
        assert get_method(m).name == m
        assert get_method(m.upper()).name == m  # case-insensitive, like scipy


def test_result_is_scipy_optimize_result():
    res = fastopt.minimize(
        quad_f,
        np.zeros(3),
        jac=quad_g,
        method="adam",
        options={"learning_rate": 0.1, "maxiter": 2000},
    )
    assert isinstance(res, OptimizeResult)
    for key in ("x", "fun", "jac", "nit", "nfev", "njev", "status", "success", "message"):
        assert key in res, key
    assert res.success is True and res.status == 0
    assert isinstance(res.message, str) and "gtol" in res.message
    assert res.x.shape == (3,) and res.jac.shape == (3,)
    np.testing.assert_allclose(res.x, X_Q, atol=1e-5)
    # fun and jac are the values at x, not at some earlier iterate
    assert res.fun == quad_f(res.x)
    np.testing.assert_array_equal(res.jac, quad_g(res.x))
    assert 0 < res.nit < 2000
    # one evaluation at x0 and one after each update
    assert res.nfev == res.njev == res.nit + 1


def test_hyperparameters_reach_the_rule():
    # one SGD step: x1 = x0 - lr * (g(x0) + wd * x0)
    x0 = np.array([0.3, -0.2, 0.1])
    res = fastopt.minimize(
        sep_f,
        x0,
        jac=sep_g,
        method="sgd",
        options={"learning_rate": 0.05, "weight_decay": 0.1, "maxiter": 1},
    )
    np.testing.assert_allclose(res.x, x0 - 0.05 * (sep_g(x0) + 0.1 * x0), rtol=1e-15)
    assert res.nit == 1 and res.status == 1


def test_default_method_is_lbfgs_or_adam_with_minibatches():
    # scipy's choice for an unconstrained problem is a quasi-Newton method:
    # the default solves 2-D Rosenbrock from (-1.2, 1) with default options
    from scipy.optimize import rosen, rosen_der

    res = fastopt.minimize(rosen, np.array([-1.2, 1.0]), jac=rosen_der)
    assert res.success and np.allclose(res.x, 1.0, atol=1e-4)
    same = fastopt.minimize(rosen, np.array([-1.2, 1.0]), jac=rosen_der, method="lbfgs")
    np.testing.assert_array_equal(res.x, same.x)
    # minibatch options: adam (lbfgs is full batch)
    X = np.arange(12.0).reshape(6, 2)
    kw = dict(args=(X,), jac=True, options={"batch_size": 2, "epochs": 2, "seed": 0})

    def fg(w, Xb):
        r = Xb @ w - 1.0
        return float(r @ r) / len(Xb), 2.0 * Xb.T @ r / len(Xb)

    a = fastopt.minimize(fg, np.zeros(2), **kw)
    b = fastopt.minimize(fg, np.zeros(2), method="adam", **kw)
    np.testing.assert_array_equal(a.x, b.x)


# --------------------------------------------------------------------------
# jac forms
# --------------------------------------------------------------------------
@pytest.mark.parametrize("jac", ["callable", True, "2-point", "3-point", None])
def test_jac_forms_converge(jac):
    fun = quad_fg if jac is True else quad_f
    j = quad_g if jac == "callable" else jac
    res = fastopt.minimize(
        fun,
        np.zeros(3),
        jac=j,
        method="adam",
        options={"learning_rate": 0.1, "maxiter": 3000, "gtol": 1e-5},
    )
    assert res.success, res.message
    np.testing.assert_allclose(res.x, X_Q, atol=1e-4)
    np.testing.assert_allclose(res.jac, quad_g(res.x), atol=1e-6)


def test_jac_true_gives_the_same_iterates_as_callable_jac():
    kw = dict(method="nag", options={"learning_rate": 0.1, "maxiter": 40, "gtol": 0})
    a = fastopt.minimize(quad_f, np.zeros(3), jac=quad_g, **kw)
    b = fastopt.minimize(quad_fg, np.zeros(3), jac=True, **kw)
    np.testing.assert_array_equal(a.x, b.x)
    assert a.nit == b.nit == 40


@pytest.mark.parametrize("jac", ["2-point", "3-point", None, "callable"])
def test_nfev_counts_every_evaluation_of_fun(jac):
    # scipy's contract: nfev is the number of times fun was called, including
    # the evaluations that finite-difference gradients make.
    calls = [0]

    def counted(x):
        calls[0] += 1
        return sep_f(x)

    j = sep_g if jac == "callable" else jac
    res = fastopt.minimize(
        counted,
        np.zeros(3),
        jac=j,
        method="adam",
        options={"learning_rate": 0.05, "maxiter": 5, "gtol": 0},
    )
    assert res.nit == 5
    if jac != "callable":
        per_gradient = {"2-point": 3, None: 3, "3-point": 6}[jac]  # n=3 coordinates
        assert res.nfev >= (1 + per_gradient) * (res.nit + 1)  # FD evaluations included
    assert res.nfev == calls[0]


def test_invalid_jac_option():
    with pytest.raises(ValueError, match="Invalid jac"):
        fastopt.minimize(quad_f, np.zeros(3), jac="5-point")


# --------------------------------------------------------------------------
# Options: gtol / tol / maxiter / return_all / disp / unknown / hess
# --------------------------------------------------------------------------
def _record_results():
    seen = []

    def cb(intermediate_result):
        seen.append(intermediate_result)

    return cb, seen


def test_gtol_stops_at_the_first_iterate_below_it():
    cb, seen = _record_results()
    gtol = 1e-3
    res = fastopt.minimize(
        quad_f,
        np.zeros(3),
        jac=quad_g,
        method="sgd",
        callback=cb,
        options={"learning_rate": 0.2, "gtol": gtol, "maxiter": 10_000},
    )
    assert res.status == 0 and res.success
    assert np.abs(res.jac).max() <= gtol
    assert len(seen) == res.nit
    # every earlier iterate had a gradient above gtol
    assert all(np.abs(r.jac).max() > gtol for r in seen[:-1])
    assert np.abs(np.asarray(seen[-1].jac)).max() <= gtol


def test_tol_sets_gtol_and_options_win():
    kw = dict(jac=quad_g, method="sgd")
    opts = {"learning_rate": 0.2, "maxiter": 10_000}
    by_tol = fastopt.minimize(quad_f, np.zeros(3), tol=1e-3, options=opts, **kw)
    by_gtol = fastopt.minimize(quad_f, np.zeros(3), options={**opts, "gtol": 1e-3}, **kw)
    default = fastopt.minimize(quad_f, np.zeros(3), options=opts, **kw)
    assert by_tol.status == 0 and np.abs(by_tol.jac).max() <= 1e-3
    assert by_tol.nit == by_gtol.nit < default.nit
    np.testing.assert_array_equal(by_tol.x, by_gtol.x)
    both = fastopt.minimize(quad_f, np.zeros(3), tol=1e-3, options={**opts, "gtol": 1e-8}, **kw)
    assert np.abs(both.jac).max() <= 1e-8 and both.nit > by_tol.nit


def test_default_gtol_is_1e_5():
    res = fastopt.minimize(
        quad_f,
        np.zeros(3),
        jac=quad_g,
        method="sgd",
        options={"learning_rate": 0.2, "maxiter": 10_000},
    )
    assert res.status == 0
    assert 1e-6 < np.abs(res.jac).max() <= 1e-5


@pytest.mark.parametrize("method", ["adam", "rprop", "momentum"])
def test_maxiter_stops_with_status_1(method):
    res = fastopt.minimize(
        rosen, np.array([-1.2, 1.0]), jac=rosen_der, method=method, options={"maxiter": 17}
    )
    assert res.status == 1 and not res.success
    assert res.nit == 17
    # one evaluation per step, except a step that did not move x (Rprop's
    # zero steps): that point is not evaluated again
    assert res.nfev == 18 or (method == "rprop" and res.nfev < 18)
    assert "Maximum number of iterations" in res.message
    assert res.fun == rosen(res.x)


def test_default_maxiter_is_1000():
    res = fastopt.minimize(
        rosen, np.array([-1.2, 1.0]), jac=rosen_der, method="sgd", options={"learning_rate": 1e-4}
    )
    assert res.status == 1 and res.nit == 1000


def test_return_all_gives_nit_plus_one_vectors():
    x0 = np.array([0.2, 0.1, -0.3])
    xs = []
    res = fastopt.minimize(
        sep_f,
        x0,
        jac=sep_g,
        method="rmsprop",
        callback=xs.append,
        options={"learning_rate": 0.05, "maxiter": 25, "return_all": True},
    )
    assert len(res.allvecs) == res.nit + 1 == 26
    np.testing.assert_array_equal(res.allvecs[0], x0)
    np.testing.assert_array_equal(res.allvecs[-1], res.x)
    np.testing.assert_array_equal(np.array(res.allvecs[1:]), np.array(xs))
    # allvecs holds copies, not 26 views of the final x
    assert len({v.tobytes() for v in res.allvecs}) == 26
    assert "allvecs" not in fastopt.minimize(sep_f, x0, jac=sep_g, options={"maxiter": 3})


def test_disp_prints(capsys):
    res = fastopt.minimize(
        sep_f, np.zeros(3), jac=sep_g, method="adam", options={"maxiter": 5, "disp": True}
    )
    out = capsys.readouterr().out
    assert res.message in out
    assert "Iterations: 5" in out
    fastopt.minimize(sep_f, np.zeros(3), jac=sep_g, options={"maxiter": 5})
    assert capsys.readouterr().out == ""


def test_unknown_option_warns_optimize_warning():
    with pytest.warns(OptimizeWarning, match="not_an_option"):
        res = fastopt.minimize(
            sep_f, np.zeros(3), jac=sep_g, method="adam", options={"maxiter": 3, "not_an_option": 1}
        )
    assert res.nit == 3
    # a hyperparameter of another rule is unknown to this one
    with pytest.warns(OptimizeWarning, match="momentum"):
        fastopt.minimize(
            sep_f, np.zeros(3), jac=sep_g, method="adam", options={"maxiter": 3, "momentum": 0.9}
        )


def test_known_options_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fastopt.minimize(
            sep_f,
            np.zeros(3),
            jac=sep_g,
            method="rmsprop",
            tol=1e-4,
            options={
                "maxiter": 3,
                "gtol": 1e-6,
                "disp": False,
                "return_all": False,
                "schedule": schedules.cosine(10),
                "learning_rate": 0.1,
                "decay": 0.9,
                "eps": 1e-8,
                "momentum": 0.5,
                "centered": True,
                "weight_decay": 0.0,
            },
        )


@pytest.mark.parametrize(
    "kw", [{"hess": lambda x: np.eye(3)}, {"hessp": lambda x, p: p}], ids=["hess", "hessp"]
)
def test_hessian_given_to_a_first_order_method_warns(kw):
    with pytest.warns(RuntimeWarning, match="Hessian"):
        res = fastopt.minimize(
            sep_f, np.zeros(3), jac=sep_g, method="adam", options={"maxiter": 3}, **kw
        )
    assert res.nit == 3


# --------------------------------------------------------------------------
# Callbacks
# --------------------------------------------------------------------------
def test_callback_xk_form_gets_a_copy_after_every_update():
    xs = []
    res = fastopt.minimize(
        sep_f,
        np.zeros(3),
        jac=sep_g,
        method="adam",
        callback=xs.append,
        options={"learning_rate": 0.1, "maxiter": 30, "return_all": True},
    )
    assert len(xs) == res.nit == 30
    np.testing.assert_array_equal(np.array(xs), np.array(res.allvecs[1:]))
    np.testing.assert_array_equal(xs[-1], res.x)


def test_callback_can_modify_its_argument_without_effect():
    def vandal(xk):
        xk[:] = 1e6

    a = fastopt.minimize(sep_f, np.zeros(3), jac=sep_g, callback=vandal, options={"maxiter": 9})
    b = fastopt.minimize(sep_f, np.zeros(3), jac=sep_g, options={"maxiter": 9})
    np.testing.assert_array_equal(a.x, b.x)


def test_callback_intermediate_result_form():
    cb, seen = _record_results()
    res = fastopt.minimize(
        sep_f,
        np.zeros(3),
        jac=sep_g,
        method="adam",
        callback=cb,
        options={"learning_rate": 0.1, "maxiter": 12},
    )
    assert len(seen) == 12
    for k, r in enumerate(seen, start=1):
        assert isinstance(r, OptimizeResult)
        assert r.nit == k
        assert r.fun == sep_f(r.x)
        np.testing.assert_array_equal(r.jac, sep_g(r.x))
    np.testing.assert_array_equal(seen[-1].x, res.x)


@pytest.mark.parametrize("form", ["xk", "intermediate_result"])
def test_callback_stop_iteration_ends_with_status_99(form):
    xs = []

    if form == "xk":

        def cb(xk):
            xs.append(xk)
            if len(xs) == 4:
                raise StopIteration
    else:

        def cb(intermediate_result):
            xs.append(intermediate_result.x)
            if len(xs) == 4:
                raise StopIteration

    res = fastopt.minimize(
        sep_f,
        np.zeros(3),
        jac=sep_g,
        method="adam",
        callback=cb,
        options={"learning_rate": 0.1, "maxiter": 100},
    )
    assert res.status == 99 and not res.success
    assert "StopIteration" in res.message
    assert res.nit == 4
    np.testing.assert_array_equal(res.x, xs[-1])  # scipy: x is the iterate the callback saw
    assert res.fun == sep_f(res.x)


# --------------------------------------------------------------------------
# Bounds and constraints
# --------------------------------------------------------------------------
LB = np.array([-1.0, -1.5, 0.0])
UB = np.array([0.8, 1.0, 0.3])
BOUND_FORMS = {  # form -> (bounds, lb, ub as arrays)
    "pairs": (list(zip(LB, UB, strict=True)), LB, UB),
    "pairs_with_none": (
        [(None, 0.8), (-1.5, None), (0.0, 0.3)],
        np.array([-np.inf, -1.5, 0.0]),
        np.array([0.8, np.inf, 0.3]),
    ),
    "Bounds": (Bounds(LB, UB), LB, UB),
    "Bounds_scalar_lb": (Bounds(-1.5, UB), np.full(3, -1.5), UB),
}


@pytest.mark.parametrize("form", BOUND_FORMS)
@pytest.mark.parametrize("method", ["sgd", "adam", "rprop", "nag"])
def test_bounds_kept_by_projection_after_every_step(form, method):
    bounds, lb, ub = BOUND_FORMS[form]
    xs = []
    x0 = np.array([0.5, 0.9, 2.0])  # x0[2] starts outside: projected first
    res = fastopt.minimize(
        sep_f,
        x0,
        jac=sep_g,
        method=method,
        bounds=bounds,
        callback=xs.append,
        options={"learning_rate": 0.05, "maxiter": 3000, "return_all": True},
    )
    all_x = np.array(res.allvecs)
    assert np.all(all_x >= lb) and np.all(all_x <= ub)
    np.testing.assert_array_equal(res.allvecs[0], np.clip(x0, lb, ub))
    # the bounded minimiser of the separable quadratic is clip(C, lb, ub)
    np.testing.assert_allclose(res.x, np.clip(C_S, lb, ub), atol=1e-3)
    assert res.x[0] == 0.8 and res.x[2] == 0.3  # active bounds are hit exactly
    assert len(xs) == res.nit


def test_bounds_wrong_length_raises():
    with pytest.raises(ValueError, match="bounds"):
        fastopt.minimize(sep_f, np.zeros(3), jac=sep_g, bounds=[(0, 1), (0, 1)])


@pytest.mark.parametrize(
    "constraints",
    [
        {"type": "eq", "fun": lambda x: x[0]},
        [{"type": "ineq", "fun": lambda x: x[0]}],
        scipy.optimize.LinearConstraint(np.eye(3), -1, 1),
    ],
    ids=["dict", "list", "LinearConstraint"],
)
def test_constraints_raise_a_clear_error(constraints):
    with pytest.raises(ValueError, match="constraints"):
        fastopt.minimize(sep_f, np.zeros(3), jac=sep_g, constraints=constraints)


@pytest.mark.parametrize("constraints", [(), [], None])
def test_empty_constraints_accepted(constraints):
    res = fastopt.minimize(
        sep_f, np.zeros(3), jac=sep_g, constraints=constraints, options={"maxiter": 2}
    )
    assert res.nit == 2


# --------------------------------------------------------------------------
# Bad input: one error-input table
# --------------------------------------------------------------------------
def _nonscalar_f(x):
    return np.array([1.0, 2.0])


def _wrong_shape_g(x):
    return np.zeros(2)


def _wrong_shape_fg(x):
    return sep_f(x), np.zeros((3, 1))


ERROR_INPUTS = [
    ("x0_nan", dict(x0=np.array([0.0, np.nan, 1.0])), r"x0 must be finite"),
    ("x0_inf", dict(x0=np.array([0.0, 1.0, -np.inf])), r"x0 must be finite"),
    ("x0_2d", dict(x0=np.zeros((3, 1))), r"x0 must be 1-D.*\(3, 1\)"),
    (
        "unknown_method",
        dict(method="bfgs-ish"),
        r"Unknown method 'bfgs-ish'.*" + ".*".join(map(re.escape, fastopt.METHODS)),
    ),
    ("adam_b1", dict(method="adam", options={"b1": 1.0}), r"^Invalid b1 value: 1\.0$"),
    ("adam_b2", dict(method="adam", options={"b2": -0.1}), r"^Invalid b2 value: -0\.1$"),
    ("adamax_b1", dict(method="adamax", options={"b1": 1.5}), r"^Invalid b1 value: 1\.5$"),
    *[
        (
            f"{m}_lr",
            dict(method=m, options={"learning_rate": -0.1}),
            r"^Invalid learning_rate value: -0\.1$",
        )
        for m in sorted(EXPECTED_FIRST_ORDER)
    ],
    *[
        (f"{m}_eps", dict(method=m, options={"eps": -1e-8}), r"^Invalid epsilon value: -1e-08$")
        for m in ("adam", "adamw", "adamax", "adagrad", "rmsprop", "adadelta")
    ],
    ("rprop_eta_minus_0", dict(method="rprop", options={"eta_minus": 0.0}), r"Invalid eta_minus"),
    ("rprop_eta_minus_1", dict(method="rprop", options={"eta_minus": 1.0}), r"Invalid eta_minus"),
    ("rprop_eta_plus_1", dict(method="rprop", options={"eta_plus": 1.0}), r"Invalid eta_plus"),
    ("rprop_eta_plus_low", dict(method="rprop", options={"eta_plus": 0.5}), r"Invalid eta_plus"),
    (
        "rmsprop_decay_1",
        dict(method="rmsprop", options={"decay": 1.1}),
        r"^Invalid decay value: 1\.1$",
    ),
    (
        "rmsprop_decay_neg",
        dict(method="rmsprop", options={"decay": -0.1}),
        r"^Invalid decay value: -0\.1$",
    ),
    ("adadelta_rho_1", dict(method="adadelta", options={"rho": 1.1}), r"^Invalid rho value: 1\.1$"),
    (
        "adadelta_rho_neg",
        dict(method="adadelta", options={"rho": -0.5}),
        r"^Invalid rho value: -0\.5$",
    ),
    ("fun_nonscalar", dict(fun=_nonscalar_f), r"fun must return a scalar"),
    ("jac_wrong_shape", dict(jac=_wrong_shape_g), r"jac must return an array of shape \(3,\)"),
    (
        "jac_true_wrong_shape",
        dict(fun=_wrong_shape_fg, jac=True),
        r"jac must return an array of shape \(3,\).*\(3, 1\)",
    ),
    ("fd_fun_nonscalar", dict(fun=_nonscalar_f, jac="2-point"), r"fun must return a scalar"),
    ("constraints", dict(constraints=[{"type": "eq", "fun": sep_f}]), r"constraints"),
    (
        "minibatch_lengths",
        dict(
            fun=_ls_data,
            jac=_ls_data_g,
            x0=np.zeros(3),
            args=(X_LS, Y_LS[:-1]),
            options={"batch_size": 4},
        ),
        r"\(40, 3\).*\(39,\)",
    ),
]


@pytest.mark.parametrize("case", ERROR_INPUTS, ids=[c[0] for c in ERROR_INPUTS])
def test_error_inputs(case):
    _, kw, pattern = case
    call = dict(fun=sep_f, x0=np.zeros(3), jac=sep_g, options={"maxiter": 2})
    call.update(kw)
    with pytest.raises(ValueError, match=pattern):
        fastopt.minimize(**call)


# --------------------------------------------------------------------------
# x0: never modified; dtypes
# --------------------------------------------------------------------------
X0_MODES = {
    "python": dict(fun=sep_f, jac=sep_g),
    "python_bounds": dict(fun=sep_f, jac=sep_g, bounds=[(-0.1, 0.1)] * 3),
    "python_fd": dict(fun=sep_f, jac="3-point"),
    "python_minibatch": dict(
        fun=py_ls_f, jac=py_ls_g, args=LS_ARGS, options={"batch_size": 7, "epochs": 2}
    ),
    "compiled": dict(fun=ls_f, jac=ls_g, args=LS_ARGS, bounds=[(-0.1, 0.1)] * 3),
    "compiled_jac_true": dict(fun=ls_fg, jac=True, args=LS_ARGS),
    "compiled_minibatch": dict(
        fun=ls_f,
        jac=ls_g,
        args=LS_ARGS,
        bounds=[(-0.1, 0.1)] * 3,
        options={"batch_size": 7, "epochs": 2},
    ),
}


@pytest.mark.parametrize("mode", X0_MODES)
@pytest.mark.parametrize("callback", [None, "xk"])
def test_x0_is_never_modified(mode, callback):
    kw = dict(X0_MODES[mode])
    kw["options"] = {"maxiter": 20, "learning_rate": 0.1, **kw.get("options", {})}
    x0 = np.array([0.5, -0.4, 0.3])
    keep = x0.copy()
    xs = []
    res = fastopt.minimize(x0=x0, method="adam", callback=xs.append if callback else None, **kw)
    np.testing.assert_array_equal(x0, keep)
    assert not np.array_equal(res.x, keep)
    assert not np.shares_memory(res.x, x0)


@pytest.mark.parametrize("mode", ["deterministic", "fd", "minibatch"])
def test_float32_x0_gives_float32_x(mode):
    x0 = np.array([0.1, 0.2, -0.1], dtype=np.float32)
    if mode == "minibatch":
        res = fastopt.minimize(
            _ls_data,
            x0,
            args=(X_LS, Y_LS),
            jac=_ls_data_g,
            method="adam",
            options={"learning_rate": 0.05, "batch_size": 8, "epochs": 30},
        )
        target = W_LS
    else:
        jac = sep_g if mode == "deterministic" else None
        res = fastopt.minimize(
            sep_f,
            x0,
            jac=jac,
            method="adam",
            options={"learning_rate": 0.05, "maxiter": 3000, "gtol": 1e-3},
        )
        target = C_S
    assert res.x.dtype == np.float32
    np.testing.assert_allclose(res.x, target, atol=0.05)


def test_int_x0_gives_float64_x():
    res = fastopt.minimize(
        sep_f,
        np.array([0, 1, 2]),
        jac=sep_g,
        method="adam",
        options={"learning_rate": 0.1, "maxiter": 5},
    )
    assert res.x.dtype == np.float64
    ref = fastopt.minimize(
        sep_f,
        np.array([0.0, 1.0, 2.0]),
        jac=sep_g,
        method="adam",
        options={"learning_rate": 0.1, "maxiter": 5},
    )
    np.testing.assert_array_equal(res.x, ref.x)
    lst = fastopt.minimize(
        sep_f, [0, 1, 2], jac=sep_g, method="adam", options={"learning_rate": 0.1, "maxiter": 5}
    )
    np.testing.assert_array_equal(lst.x, ref.x)


# --------------------------------------------------------------------------
# NaN / inf during a run
# --------------------------------------------------------------------------
def _bad_fun_pair(where, value):
    """sep objective whose fun or jac returns ``value`` once x[0] > BAD_AT."""

    def f(x):
        return value if where == "fun" and x[0] > BAD_AT else sep_f(x)

    def g(x):
        gx = sep_g(x)
        if where == "jac" and x[0] > BAD_AT:
            gx[2] = value
        return gx

    return f, g


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["fun", "jac"])
def test_nonfinite_during_run_python(where, value):
    f, g = _bad_fun_pair(where, value)
    f_rec, seen = _recording(f)
    xs = []
    res = fastopt.minimize(
        f_rec,
        np.zeros(3),
        jac=g,
        method="adam",
        callback=xs.append,
        options={"learning_rate": 0.05, "maxiter": 1000},
    )
    assert not res.success
    assert res.status == (3 if where == "fun" else 4)
    word = "objective value" if where == "fun" else "gradient"
    assert word in res.message and "NaN or inf" in res.message
    # the last point evaluated is the bad one; x is the iterate before it
    assert seen[-1][0] > BAD_AT
    np.testing.assert_array_equal(res.x, seen[-2])
    np.testing.assert_array_equal(res.x, xs[-1])
    assert res.x[0] <= BAD_AT
    assert np.isfinite(res.fun) and res.fun == sep_f(res.x)
    np.testing.assert_array_equal(res.jac, sep_g(res.x))


def test_nonfinite_update_is_reported():
    # a finite gradient so large that the step overflows to inf in x
    def f(x):
        return float(x @ x)

    def g(x):
        return np.full_like(x, 1e308)

    res = fastopt.minimize(
        f, np.ones(2), jac=g, method="sgd", options={"learning_rate": 1e10, "maxiter": 5}
    )
    assert not res.success and res.status == 5
    np.testing.assert_array_equal(res.x, np.ones(2))


@pytest.mark.parametrize("where", ["fun", "jac"])
def test_nonfinite_during_run_compiled(where):
    args = (X_LS, Y_LS, BAD_AT, np.inf) if where == "fun" else (X_LS, Y_LS, np.inf, BAD_AT)
    out = {}
    for driver, (f, g) in {"compiled": (ls_f, ls_g), "python": (py_ls_f, py_ls_g)}.items():
        xs = []
        res = fastopt.minimize(
            f,
            np.zeros(3),
            args=args,
            jac=g,
            method="adam",
            callback=xs.append,
            options={"learning_rate": 0.05, "maxiter": 1000},
        )
        out[driver] = res
        assert not res.success and res.status == (3 if where == "fun" else 4), driver
        assert ("objective value" if where == "fun" else "gradient") in res.message
        assert res.x[0] <= BAD_AT
        np.testing.assert_array_equal(res.x, xs[-1])
        assert res.fun == pytest.approx(py_ls_f(res.x, *LS_ARGS), rel=1e-12)
    np.testing.assert_allclose(out["compiled"].x, out["python"].x, rtol=1e-12, atol=0)
    assert out["compiled"].nit == out["python"].nit


@pytest.mark.parametrize("driver", ["python", "compiled"])
@pytest.mark.parametrize("where", ["fun", "jac"])
def test_nonfinite_during_minibatch_run(driver, where):
    # minibatch mode: the bad values come from fun(x_k, batch); x_k's batch
    # was never evaluated finitely, so the result is x_(k-1), the previous
    # iterate, and the full-data fun/jac there are finite.
    args = (X_LS, Y_LS, BAD_AT, np.inf) if where == "fun" else (X_LS, Y_LS, np.inf, BAD_AT)
    f, g = (ls_f, ls_g) if driver == "compiled" else (py_ls_f, py_ls_g)
    xs = []
    res = fastopt.minimize(
        f,
        np.zeros(3),
        args=args,
        jac=g,
        method="adam",
        callback=xs.append,
        options={"learning_rate": 0.05, "batch_size": 8, "epochs": 50},
    )
    assert not res.success and res.status == (3 if where == "fun" else 4)
    assert xs[-1][0] > BAD_AT  # the iterate whose batch values were not finite
    np.testing.assert_array_equal(res.x, xs[-2])
    assert res.x[0] <= BAD_AT
    assert np.isfinite(res.fun) and np.all(np.isfinite(res.jac))


# --------------------------------------------------------------------------
# Minibatches
# --------------------------------------------------------------------------
def _batch_recorder():
    """A mean-loss least-squares fun that records the sample indices it sees."""
    batches = []

    def f(w, X, y, idx, scale):
        assert scale == 2.5  # non-array args pass through unsliced
        if idx.shape[0] < N_LS:  # the full-data calls are not batches
            batches.append(idx.copy())
        return scale * _ls_data(w, X, y)

    def g(w, X, y, idx, scale):
        return scale * _ls_data_g(w, X, y)

    return f, g, batches


MB_ARGS = (X_LS, Y_LS, np.arange(N_LS), 2.5)


def _epochs_of(batches, n_per_epoch):
    return [
        np.concatenate(batches[k : k + n_per_epoch]) for k in range(0, len(batches), n_per_epoch)
    ]


@pytest.mark.parametrize("batch_size", [7, 8, 40])
def test_minibatch_slices_args_and_reshuffles_every_epoch(batch_size):
    f, g, batches = _batch_recorder()
    epochs = 4
    res = fastopt.minimize(
        f,
        np.zeros(3),
        args=MB_ARGS,
        jac=g,
        method="sgd",
        options={"learning_rate": 0.1, "batch_size": batch_size, "epochs": epochs, "seed": 3},
    )
    per_epoch = math.ceil(N_LS / batch_size)
    assert res.nit == epochs * per_epoch
    assert res.status == 6 and res.success and "epochs" in res.message
    if batch_size == N_LS:
        assert batches == []
        return
    assert len(batches) == res.nit
    sizes = [len(b) for b in batches[:per_epoch]]
    assert sizes == [batch_size] * (N_LS // batch_size) + (
        [N_LS % batch_size] if N_LS % batch_size else []
    )
    orders = _epochs_of(batches, per_epoch)
    for order in orders:
        np.testing.assert_array_equal(np.sort(order), np.arange(N_LS))  # each sample once
    # reshuffled every epoch, and shuffled at all
    assert len({o.tobytes() for o in orders}) == epochs
    assert not np.array_equal(orders[0], np.arange(N_LS))


def test_minibatch_without_shuffle_goes_in_order():
    f, g, batches = _batch_recorder()
    fastopt.minimize(
        f,
        np.zeros(3),
        args=MB_ARGS,
        jac=g,
        method="sgd",
        options={"learning_rate": 0.1, "batch_size": 16, "epochs": 2, "shuffle": False},
    )
    assert len(batches) == 6
    for order in _epochs_of(batches, 3):
        np.testing.assert_array_equal(order, np.arange(N_LS))


def test_minibatch_seed_is_deterministic_and_seeds_differ():
    def run(seed):
        f, g, batches = _batch_recorder()
        res = fastopt.minimize(
            f,
            np.zeros(3),
            args=MB_ARGS,
            jac=g,
            method="adam",
            options={"learning_rate": 0.05, "batch_size": 8, "epochs": 3, "seed": seed},
        )
        return res, batches

    a, ba = run(11)
    b, bb = run(11)
    c, bc = run(12)
    np.testing.assert_array_equal(a.x, b.x)
    assert all(np.array_equal(p, q) for p, q in zip(ba, bb, strict=True))
    assert not np.array_equal(a.x, c.x)
    assert not all(np.array_equal(p, q) for p, q in zip(ba, bc, strict=True))


def test_minibatch_result_fun_and_jac_are_full_data_values():
    res = fastopt.minimize(
        py_ls_f,
        np.zeros(3),
        args=LS_ARGS,
        jac=py_ls_g,
        method="adam",
        options={"learning_rate": 0.05, "batch_size": 8, "epochs": 40, "seed": 0},
    )
    assert res.fun == py_ls_f(res.x, *LS_ARGS)
    np.testing.assert_array_equal(res.jac, py_ls_g(res.x, *LS_ARGS))
    np.testing.assert_allclose(res.x, W_LS, atol=0.05)  # near the full-data minimiser
    assert res.nit == 40 * 5


def test_full_batch_without_shuffle_equals_deterministic_mode():
    # fun returns the mean over the rows it gets: one batch of all rows in
    # order is the full objective, so the iterates are the same bit for bit
    kw = dict(args=LS_ARGS, jac=py_ls_g, method="momentum")
    mb = fastopt.minimize(
        py_ls_f,
        np.zeros(3),
        options={"learning_rate": 0.1, "batch_size": N_LS, "epochs": 25, "shuffle": False},
        **kw,
    )
    det = fastopt.minimize(
        py_ls_f, np.zeros(3), options={"learning_rate": 0.1, "maxiter": 25, "gtol": 0}, **kw
    )
    assert mb.nit == det.nit == 25
    np.testing.assert_array_equal(mb.x, det.x)


def test_minibatch_maxiter_stops_early():
    res = fastopt.minimize(
        py_ls_f,
        np.zeros(3),
        args=LS_ARGS,
        jac=py_ls_g,
        method="adam",
        options={"batch_size": 8, "epochs": 10, "maxiter": 13},
    )
    assert res.nit == 13 and res.status == 1 and not res.success


def test_minibatch_default_one_epoch():
    res = fastopt.minimize(
        py_ls_f, np.zeros(3), args=LS_ARGS, jac=py_ls_g, options={"batch_size": 16}
    )
    assert res.nit == 3 and res.status == 6


def test_minibatch_return_all_and_callback_forms():
    xs = []
    cb, seen = _record_results()
    opts = {"learning_rate": 0.05, "batch_size": 16, "epochs": 2, "return_all": True}
    res = fastopt.minimize(
        py_ls_f,
        np.zeros(3),
        args=LS_ARGS,
        jac=py_ls_g,
        method="adam",
        callback=xs.append,
        options=opts,
    )
    assert len(res.allvecs) == res.nit + 1 == 7
    np.testing.assert_array_equal(np.array(res.allvecs[1:]), np.array(xs))
    res2 = fastopt.minimize(
        py_ls_f, np.zeros(3), args=LS_ARGS, jac=py_ls_g, method="adam", callback=cb, options=opts
    )
    assert [r.nit for r in seen] == list(range(1, 7))
    np.testing.assert_array_equal(np.array([r.x for r in seen]), np.array(xs))
    assert all(np.isfinite(r.fun) for r in seen)
    np.testing.assert_array_equal(res2.x, res.x)


def test_minibatch_array_args_must_share_length():
    with pytest.raises(ValueError, match=r"args\[0\]\.shape=\(40, 3\).*args\[1\]\.shape=\(30,\)"):
        fastopt.minimize(
            _ls_data, np.zeros(3), args=(X_LS, Y_LS[:30]), jac=_ls_data_g, options={"batch_size": 8}
        )


def test_minibatch_needs_an_array_arg():
    with pytest.raises(ValueError, match="batch_size"):
        fastopt.minimize(sep_f, np.zeros(3), jac=sep_g, options={"batch_size": 8})


def test_zero_d_array_args_are_not_sliced():
    def f(w, X, y, s):
        assert s.ndim == 0 and s == 2.0
        return float(s) * _ls_data(w, X, y)

    def g(w, X, y, s):
        return float(s) * _ls_data_g(w, X, y)

    res = fastopt.minimize(
        f, np.zeros(3), args=(X_LS, Y_LS, np.array(2.0)), jac=g, options={"batch_size": 8}
    )
    assert res.nit == 5


def test_rprop_with_minibatches_warns():
    with pytest.warns(UserWarning, match="rprop"):
        fastopt.minimize(
            py_ls_f,
            np.zeros(3),
            args=LS_ARGS,
            jac=py_ls_g,
            method="rprop",
            options={"batch_size": 8},
        )


@pytest.mark.parametrize(
    "opts", [{"batch_size": 0}, {"batch_size": 2.5}, {"epochs": 2}, {"batch_size": 4, "epochs": 0}]
)
def test_minibatch_bad_options(opts):
    with pytest.raises(ValueError):
        fastopt.minimize(py_ls_f, np.zeros(3), args=LS_ARGS, jac=py_ls_g, options=opts)


# --------------------------------------------------------------------------
# Compiled driver == Python driver == optimizer API
# --------------------------------------------------------------------------
# (method, hyperparameters): every rule and every compiled variant
RULE_CASES = [
    ("sgd", {"learning_rate": 0.1, "weight_decay": 0.01}),
    ("momentum", {"learning_rate": 0.05, "momentum": 0.9, "dampening": 0.1}),
    ("nag", {"learning_rate": 0.05, "momentum": 0.8}),
    ("rprop", {"learning_rate": 0.05}),
    ("rprop", {"learning_rate": 0.05, "variant": "rprop-"}),
    ("rprop", {"learning_rate": 0.05, "variant": "rprop+"}),
    ("rprop", {"learning_rate": 0.05, "variant": "irprop+"}),
    ("adagrad", {"learning_rate": 0.3, "lr_decay": 0.01}),
    ("rmsprop", {"learning_rate": 0.02}),
    ("rmsprop", {"learning_rate": 0.02, "centered": True}),
    ("rmsprop", {"learning_rate": 0.02, "momentum": 0.5}),
    ("rmsprop", {"learning_rate": 0.02, "momentum": 0.5, "centered": True}),
    ("adadelta", {"learning_rate": 1.0}),
    ("adam", {"learning_rate": 0.05}),
    ("adam", {"learning_rate": 0.05, "amsgrad": True}),
    ("adam", {"learning_rate": 0.05, "weight_decay": 0.01}),
    ("adamw", {"learning_rate": 0.05}),
    ("adamax", {"learning_rate": 0.05}),
    ("nadam", {"learning_rate": 0.05}),
    ("radam", {"learning_rate": 0.05}),
]
RULE_IDS = [f"{m}-{i}" for i, (m, _) in enumerate(RULE_CASES)]
# The compiled loop is specialised per rule variant and per user function
# (~1.5 s of compiling each on two cores), so the compiled driver runs a few
# variants; the Python driver and the optimizer API run all of them.
COMPILED_CASES = [RULE_CASES[i] for i in (2, 3, 8, 13)]  # nag, irprop-, rmsprop, adam
N_STEPS = 60


def test_rule_cases_cover_every_first_order_method():
    assert {m for m, _ in RULE_CASES} == set(FIRST_ORDER)
    keys = {fastopt.optimizer(m, **h).key for m, h in RULE_CASES}
    assert keys == {k for k, _ in KERNEL_TABLE}  # every compiled variant


def _hand_loop(method, hyper, x0, n_steps, schedule=None):
    opt = fastopt.optimizer(method, schedule=schedule, **hyper)
    x = x0.copy()
    state = opt.init(x)
    for _ in range(n_steps):
        f, g = py_ls_fg(x, *LS_ARGS)
        state = opt.step(x, g, state, value=f)
    return x


@pytest.mark.parametrize("case", RULE_CASES, ids=RULE_IDS)
def test_python_driver_and_optimizer_api_agree(case):
    method, hyper = case
    x0 = np.array([0.3, 0.2, -0.1])
    opts = {**hyper, "maxiter": N_STEPS, "gtol": 0.0}
    py = fastopt.minimize(py_ls_f, x0, args=LS_ARGS, jac=py_ls_g, method=method, options=opts)
    hand = _hand_loop(method, hyper, x0, N_STEPS)
    assert py.nit == N_STEPS
    assert not np.array_equal(py.x, x0)
    np.testing.assert_allclose(hand, py.x, rtol=1e-12, atol=0)


@pytest.mark.parametrize("case", COMPILED_CASES, ids=[m for m, _ in COMPILED_CASES])
def test_compiled_python_and_optimizer_api_agree(case):
    method, hyper = case
    x0 = np.array([0.3, 0.2, -0.1])
    opts = {**hyper, "maxiter": N_STEPS, "gtol": 0.0}
    py = fastopt.minimize(py_ls_f, x0, args=LS_ARGS, jac=py_ls_g, method=method, options=opts)
    jit = fastopt.minimize(ls_f, x0, args=LS_ARGS, jac=ls_g, method=method, options=opts)
    hand = _hand_loop(method, hyper, x0, N_STEPS)
    assert py.nit == jit.nit == N_STEPS
    np.testing.assert_allclose(jit.x, py.x, rtol=1e-12, atol=0)
    np.testing.assert_allclose(hand, jit.x, rtol=1e-12, atol=0)
    assert jit.fun == pytest.approx(py.fun, rel=1e-12)
    np.testing.assert_allclose(jit.jac, py.jac, rtol=1e-10)
    assert jit.nfev == py.nfev == jit.njev == py.njev
    # one evaluation per step, but a step that left x where it was (Rprop
    # after a sign change everywhere) is not evaluated again
    assert jit.nfev == N_STEPS + 1 or (method == "rprop" and jit.nfev < N_STEPS + 1)
    if method == "adam":  # jac=True compiles one more loop: once is enough
        jit_fg = fastopt.minimize(ls_fg, x0, args=LS_ARGS, jac=True, method=method, options=opts)
        np.testing.assert_allclose(jit_fg.x, py.x, rtol=1e-12, atol=0)


SCHEDULES = {
    "none": None,
    "cosine": schedules.cosine(40, min_lr=1e-3),
    "step_decay": schedules.step_decay(10, 0.5),
    "callable": lambda t: 0.08 / (1.0 + 0.1 * t),
}
DRIVER_METHODS = ["adam", "nag", "rprop", "rmsprop"]


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("method", DRIVER_METHODS)
def test_compiled_deterministic_matches_python_with_schedule_and_bounds(method, schedule):
    sched = SCHEDULES[schedule]
    bounds = [(-1.0, 0.7), (-1.5, 1.0), (None, 0.2)]  # w* ~ (1, -2, .5): all three bind
    x0 = np.zeros(3)
    opts = {"learning_rate": 0.05, "maxiter": N_STEPS, "gtol": 0.0, "schedule": sched}
    py = fastopt.minimize(
        py_ls_f, x0, args=LS_ARGS, jac=py_ls_g, method=method, bounds=bounds, options=opts
    )
    jit = fastopt.minimize(
        ls_f, x0, args=LS_ARGS, jac=ls_g, method=method, bounds=bounds, options=opts
    )
    np.testing.assert_allclose(jit.x, py.x, rtol=1e-12, atol=0)
    assert np.all(py.x <= [0.7, 1.0, 0.2]) and np.all(py.x >= [-1.0, -1.5, -np.inf])
    if method != "rprop":  # rprop ignores schedules: lr is only the initial step
        hand = _hand_loop(method, {"learning_rate": 0.05}, x0, N_STEPS, schedule=sched)
        unbounded = fastopt.minimize(
            py_ls_f, x0, args=LS_ARGS, jac=py_ls_g, method=method, options=opts
        )
        np.testing.assert_allclose(hand, unbounded.x, rtol=1e-12, atol=0)


def test_schedule_changes_the_iterates():
    opts = {"learning_rate": 0.05, "maxiter": N_STEPS, "gtol": 0.0}
    a = fastopt.minimize(ls_f, np.zeros(3), args=LS_ARGS, jac=ls_g, method="adam", options=opts)
    b = fastopt.minimize(
        ls_f,
        np.zeros(3),
        args=LS_ARGS,
        jac=ls_g,
        method="adam",
        options={**opts, "schedule": SCHEDULES["callable"]},
    )
    assert not np.array_equal(a.x, b.x)


MB_CASES = {  # (method, schedule, bounds): variants compiled above
    "adam": ("adam", None, None),
    "nag_bounds": ("nag", None, [(-1.0, 0.7), (-1.5, 1.0), (None, 0.2)]),
    "rmsprop_cosine": ("rmsprop", schedules.cosine(30), None),
    "adam_callable_bounds": ("adam", SCHEDULES["callable"], [(0.0, 0.9)] * 3),
    "nag_noshuffle": ("nag", None, None),
}


@pytest.mark.parametrize("case", MB_CASES)
def test_compiled_minibatch_matches_python(case):
    method, sched, bounds = MB_CASES[case]
    opts = {
        "learning_rate": 0.05,
        "batch_size": 6,
        "epochs": 5,
        "seed": 42,
        "schedule": sched,
        "shuffle": case != "nag_noshuffle",
    }
    py = fastopt.minimize(
        py_ls_f, np.zeros(3), args=LS_ARGS, jac=py_ls_g, method=method, bounds=bounds, options=opts
    )
    jit = fastopt.minimize(
        ls_f, np.zeros(3), args=LS_ARGS, jac=ls_g, method=method, bounds=bounds, options=opts
    )
    assert py.nit == jit.nit == 5 * 7
    assert py.status == jit.status == 6
    np.testing.assert_allclose(jit.x, py.x, rtol=1e-12, atol=0)
    assert jit.fun == pytest.approx(py_ls_f(jit.x, *LS_ARGS), rel=1e-12)
    if bounds is not None:
        lo = np.array([-np.inf if b[0] is None else b[0] for b in bounds])
        hi = np.array([b[1] for b in bounds])
        assert np.all(jit.x >= lo) and np.all(jit.x <= hi)


def test_minibatch_without_shuffle_matches_optimizer_api():
    method, hyper = "adam", {"learning_rate": 0.05}
    opts = {**hyper, "batch_size": 16, "epochs": 3, "shuffle": False}
    jit = fastopt.minimize(ls_f, np.zeros(3), args=LS_ARGS, jac=ls_g, method=method, options=opts)
    opt = fastopt.optimizer(method, **hyper)
    x = np.zeros(3)
    state = opt.init(x)
    for _ in range(3):
        for lo in range(0, N_LS, 16):
            sl = slice(lo, lo + 16)
            state = opt.step(x, py_ls_g(x, X_LS[sl], Y_LS[sl], np.inf, np.inf), state)
    np.testing.assert_allclose(jit.x, x, rtol=1e-12, atol=0)


def _collector(form):
    """A callback of the given form that records the iterates it sees."""
    seen = []
    if form == "xk":

        def cb(xk):
            seen.append(xk)
    else:

        def cb(intermediate_result):
            seen.append(intermediate_result.x)

    return cb, seen


@pytest.mark.parametrize("mode", ["deterministic", "minibatch"])
@pytest.mark.parametrize("form", ["xk", "intermediate_result"])
def test_compiled_callback_sees_the_same_iterates(mode, form):
    opts = {"learning_rate": 0.05, "schedule": schedules.cosine(40)}
    if mode == "minibatch":
        opts.update(batch_size=6, epochs=4, seed=5)  # 7 batches an epoch: crosses epochs
    else:
        opts.update(maxiter=40, gtol=0.0)
    runs = {}
    for driver, (f, g) in {"python": (py_ls_f, py_ls_g), "compiled": (ls_f, ls_g)}.items():
        cb, seen = _collector(form)
        res = fastopt.minimize(
            f, np.zeros(3), args=LS_ARGS, jac=g, method="adam", callback=cb, options=opts
        )
        runs[driver] = (res, np.array(seen))
    (py, xs_py), (jit, xs_jit) = runs["python"], runs["compiled"]
    assert len(xs_py) == len(xs_jit) == py.nit == jit.nit
    np.testing.assert_allclose(xs_jit, xs_py, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(xs_jit[-1], jit.x)
    # the callback does not change the compiled run
    plain = fastopt.minimize(ls_f, np.zeros(3), args=LS_ARGS, jac=ls_g, method="adam", options=opts)
    np.testing.assert_allclose(jit.x, plain.x, rtol=1e-12, atol=0)


@pytest.mark.parametrize("mode", ["deterministic", "minibatch"])
def test_compiled_callback_stop_iteration(mode):
    opts = {"learning_rate": 0.05}
    opts.update({"batch_size": 6, "epochs": 4} if mode == "minibatch" else {"maxiter": 100})
    xs = []

    def cb(xk):
        xs.append(xk)
        if len(xs) == 9:  # past the first epoch in minibatch mode
            raise StopIteration

    res = fastopt.minimize(
        ls_f, np.zeros(3), args=LS_ARGS, jac=ls_g, method="adam", callback=cb, options=opts
    )
    assert res.status == 99 and not res.success and res.nit == 9
    np.testing.assert_array_equal(res.x, xs[-1])


def test_compiled_return_all():
    res = fastopt.minimize(
        ls_f,
        np.zeros(3),
        args=LS_ARGS,
        jac=ls_g,
        method="adam",
        options={"maxiter": 10, "gtol": 0.0, "return_all": True},
    )
    py = fastopt.minimize(
        py_ls_f,
        np.zeros(3),
        args=LS_ARGS,
        jac=py_ls_g,
        method="adam",
        options={"maxiter": 10, "gtol": 0.0, "return_all": True},
    )
    assert len(res.allvecs) == res.nit + 1 == 11
    np.testing.assert_allclose(np.array(res.allvecs), np.array(py.allvecs), rtol=1e-12, atol=0)


def test_compiled_gtol_and_error_checks():
    res = fastopt.minimize(
        ls_f,
        np.zeros(3),
        args=LS_ARGS,
        jac=ls_g,
        method="adam",
        options={"learning_rate": 0.05, "maxiter": 20_000, "gtol": 1e-6},
    )
    assert res.status == 0 and np.abs(res.jac).max() <= 1e-6
    np.testing.assert_allclose(res.x, W_LS, atol=1e-5)
    with pytest.raises(ValueError, match="x0 must be finite"):
        fastopt.minimize(ls_f, np.array([0.0, np.nan, 0.0]), args=LS_ARGS, jac=ls_g)


# --------------------------------------------------------------------------
# scipy.optimize.minimize(method=fastopt.as_scipy_method(...))
# --------------------------------------------------------------------------
def test_as_scipy_method_matches_fastopt_minimize():
    x0 = np.array([0.5, -0.4, 0.3])
    keep = x0.copy()
    opts = {"learning_rate": 0.05, "maxiter": 50}
    via_scipy = scipy.optimize.minimize(
        sep_f, x0, jac=sep_g, method=fastopt.as_scipy_method("adam"), options=opts
    )
    np.testing.assert_array_equal(x0, keep)
    direct = fastopt.minimize(sep_f, keep, jac=sep_g, method="adam", options=opts)
    assert isinstance(via_scipy, OptimizeResult)
    np.testing.assert_array_equal(via_scipy.x, direct.x)
    assert via_scipy.nit == direct.nit == 50 and via_scipy.status == 1


def test_as_scipy_method_jac_true():
    x0 = np.zeros(3)
    res = scipy.optimize.minimize(
        quad_fg,
        x0,
        jac=True,
        method=fastopt.as_scipy_method("nag"),
        options={"learning_rate": 0.1, "maxiter": 40, "gtol": 0},
    )
    ref = fastopt.minimize(
        quad_f,
        x0,
        jac=quad_g,
        method="nag",
        options={"learning_rate": 0.1, "maxiter": 40, "gtol": 0},
    )
    np.testing.assert_array_equal(res.x, ref.x)
    np.testing.assert_array_equal(x0, 0.0)


@pytest.mark.parametrize("form", ["xk", "intermediate_result"])
def test_as_scipy_method_callbacks(form):
    xs = []
    if form == "xk":

        def cb(xk):
            xs.append(xk)
            if len(xs) == 5:
                raise StopIteration
    else:

        def cb(intermediate_result):
            assert isinstance(intermediate_result, OptimizeResult)
            xs.append(intermediate_result.x)
            if len(xs) == 5:
                raise StopIteration

    x0 = np.array([0.5, -0.4, 0.3])
    res = scipy.optimize.minimize(
        sep_f,
        x0,
        jac=sep_g,
        method=fastopt.as_scipy_method("adam"),
        callback=cb,
        options={"maxiter": 100},
    )
    assert res.status == 99 and res.nit == 5
    np.testing.assert_array_equal(res.x, xs[-1])
    np.testing.assert_array_equal(x0, [0.5, -0.4, 0.3])


def test_as_scipy_method_bounds_and_fd():
    res = scipy.optimize.minimize(
        sep_f,
        np.zeros(3),
        method=fastopt.as_scipy_method("adam"),
        bounds=Bounds(LB, UB),
        options={"learning_rate": 0.05, "maxiter": 3000},
    )
    np.testing.assert_allclose(res.x, np.clip(C_S, LB, UB), atol=1e-3)


def test_as_scipy_method_tol():
    # scipy hands ``tol`` to a custom method as options["tol"]; it must set
    # gtol as in fastopt.minimize, not warn as an unknown option.
    opts = {"learning_rate": 0.2, "maxiter": 10_000}
    with warnings.catch_warnings():
        warnings.simplefilter("error", OptimizeWarning)
        res = scipy.optimize.minimize(
            quad_f,
            np.zeros(3),
            jac=quad_g,
            tol=1e-3,
            method=fastopt.as_scipy_method("sgd"),
            options=opts,
        )
    ref = fastopt.minimize(quad_f, np.zeros(3), jac=quad_g, tol=1e-3, method="sgd", options=opts)
    assert res.nit == ref.nit
    np.testing.assert_array_equal(res.x, ref.x)


def test_as_scipy_method_unknown_method():
    with pytest.raises(ValueError, match="Unknown method"):
        fastopt.as_scipy_method("lbfgs-typo")


# --------------------------------------------------------------------------
# Convergence of every first-order method
# --------------------------------------------------------------------------
# (options, expected status, |x - x*| tolerance, pinned nit upper bound).
# Measured nit are pinned with ~5% slack so that they cannot grow silently
# (scipy test_cg).  adamw's decoupled weight decay moves its fixed point
# off x*: with a constant rate it stops at maxiter near x*.
QUADRATIC = {
    "sgd": ({"learning_rate": 0.3, "maxiter": 500}, 0, 1e-5, 65),
    "momentum": ({"learning_rate": 0.1, "momentum": 0.5, "maxiter": 500}, 0, 1e-5, 80),
    "nag": ({"learning_rate": 0.1, "momentum": 0.5, "maxiter": 500}, 0, 1e-5, 91),
    "rprop": ({"learning_rate": 0.1, "maxiter": 500}, 0, 1e-5, 81),
    "adagrad": ({"learning_rate": 1.0, "maxiter": 500}, 0, 1e-5, 50),
    "rmsprop": (
        {"learning_rate": 0.05, "schedule": schedules.exponential(0.99), "maxiter": 2000},
        0,
        1e-5,
        316,
    ),
    "adadelta": ({"learning_rate": 0.5, "maxiter": 5000}, 0, 1e-5, 1340),
    "adam": ({"learning_rate": 0.1, "maxiter": 2000}, 0, 1e-5, 278),
    "adamw": (
        {
            "learning_rate": 0.1,
            "weight_decay": 1e-4,
            "schedule": schedules.cosine(2000),
            "maxiter": 2000,
        },
        1,
        1e-4,
        2000,
    ),
    "adamax": ({"learning_rate": 0.2, "maxiter": 2000}, 0, 1e-5, 223),
    "nadam": ({"learning_rate": 0.1, "maxiter": 2000}, 0, 1e-5, 108),  # measured 102
    "radam": ({"learning_rate": 0.2, "maxiter": 2000}, 0, 1e-5, 291),  # measured 277
}
ROSENBROCK = {
    "sgd": ({"learning_rate": 1.4e-3, "maxiter": 20_000}, 0, 1e-4, 19_500),
    "momentum": ({"learning_rate": 1e-3, "momentum": 0.95, "maxiter": 3000}, 0, 1e-4, 1134),
    "nag": ({"learning_rate": 1e-3, "momentum": 0.95, "maxiter": 3000}, 0, 1e-4, 967),
    "rprop": ({"learning_rate": 0.01, "min_step": 0.0, "maxiter": 10_000}, 0, 1e-4, 6307),
    "adagrad": ({"learning_rate": 0.5, "maxiter": 20_000}, 0, 1e-4, 13_994),
    "rmsprop": (
        {
            "learning_rate": 0.01,
            "momentum": 0.9,
            "schedule": schedules.cosine(10_000),
            "maxiter": 10_000,
        },
        0,
        1e-4,
        10_000,
    ),
    "adadelta": (
        {"learning_rate": 0.05, "schedule": schedules.cosine(20_000), "maxiter": 20_000},
        0,
        1e-4,
        18_415,
    ),
    "adam": ({"learning_rate": 0.2, "maxiter": 3000}, 0, 1e-4, 1120),
    "adamw": (
        {
            "learning_rate": 0.05,
            "weight_decay": 1e-4,
            "schedule": schedules.cosine(10_000),
            "maxiter": 10_000,
        },
        0,
        1e-4,
        10_000,
    ),
    "adamax": ({"learning_rate": 1.0, "maxiter": 5000}, 0, 1e-4, 2356),
    "nadam": (  # measured 7186
        {"learning_rate": 0.05, "schedule": schedules.cosine(10_000), "maxiter": 10_000},
        0,
        1e-4,
        7550,
    ),
    # RAdam's first steps are momentum SGD on the raw gradient (~200 at x0): a
    # small rate, or it leaves before the adaptive phase starts; measured 10171
    "radam": ({"learning_rate": 0.005, "maxiter": 20_000}, 0, 1e-4, 10_700),
}


def test_convergence_tables_cover_every_first_order_method():
    assert set(QUADRATIC) == set(ROSENBROCK) == set(FIRST_ORDER)


@pytest.mark.parametrize("method", FIRST_ORDER)
def test_converges_on_convex_quadratic(method):
    opts, status, tol, max_nit = QUADRATIC[method]
    res = fastopt.minimize(
        quad_f, np.zeros(3), jac=quad_g, method=method, options={**opts, "gtol": 1e-6}
    )
    assert res.status == status, res.message
    assert res.success == (status == 0)
    assert np.abs(res.x - X_Q).max() < tol
    assert res.nit <= max_nit
    if status == 0:
        assert np.abs(res.jac).max() <= 1e-6


@pytest.mark.parametrize("method", FIRST_ORDER)
def test_converges_on_rosenbrock(method):
    opts, status, tol, max_nit = ROSENBROCK[method]
    res = fastopt.minimize(
        rosen, np.array([-1.2, 1.0]), jac=rosen_der, method=method, options={**opts, "gtol": 1e-5}
    )
    assert res.status == status, res.message
    assert res.success
    assert np.abs(res.x - 1.0).max() < tol
    assert res.nit <= max_nit
    assert res.fun < 1e-8


# --- the compiled driver writes step and checks out in its loop --------------------------


def test_compiled_loop_has_step_and_accept_written_out():
    # a call into them would cost an atomic incref/decref per array argument
    # per iteration (first_order.written_out); the written-out loop names
    # neither, and renamed locals of both appear instead
    from fastopt.drivers import first_order as fo
    from fastopt.drivers._checks import accept

    loop = fo.written_out(fo.deterministic_loop, {"step": fo.rule_step, "accept": accept.py_func})
    names = loop.__code__.co_names
    assert "step" not in names and "accept" not in names
    assert "_step_elem" in names and "_step_coeffs" in names
    local = loop.__code__.co_varnames
    assert any(v.startswith("_accept") for v in local)
    assert any(v.startswith("_rule_step") for v in local)


def test_written_out_rejects_an_early_return():
    from fastopt.drivers import first_order as fo

    def early(a):
        if a:
            return 1
        return 2

    def caller(a):
        b = early(a)
        return b

    with pytest.raises(ValueError, match="one return"):
        fo.written_out(caller, {"early": early})


def test_written_out_gives_the_same_results_as_the_calls():
    from fastopt.drivers import first_order as fo

    def clipped_sum(v, lo):
        s = 0.0
        for i in range(v.shape[0]):
            s += v[i] if v[i] > lo else lo
        return s, v.shape[0]

    def caller(v, lo):
        i = -1  # the callee's loop variable must not clobber this
        total, n = clipped_sum(v, lo)
        return total, n, i

    v = np.array([-1.0, 2.0, 0.5])
    assert fo.written_out(caller, {"clipped_sum": clipped_sum})(v, 0.0) == caller(v, 0.0)


def test_compiled_driver_without_source_calls_step_and_accept(monkeypatch):
    # frozen or zipped installs have no source to rewrite: the compiled loop
    # then calls the inlined step and accept, with the same iterates
    import inspect

    from fastopt.drivers import first_order as fo

    x0 = np.zeros(X_LS.shape[1])
    opts = {"learning_rate": 1e-2, "maxiter": 50}
    ref = fastopt.minimize(ls_fg, x0, args=LS_ARGS, jac=True, method="adamax", options=opts)

    def no_source(obj):
        raise OSError("no source")

    monkeypatch.setattr(inspect, "getsource", no_source)
    monkeypatch.setattr(fo, "_COMPILED", {})  # restored afterwards
    (det, first), _ = fo.compiled_loops(fastopt.optimizer("adamax").kid, ls_fg)
    assert "step" in det.py_func.__code__.co_names and first == (ls_fg,)  # not written out
    res = fastopt.minimize(ls_fg, x0, args=LS_ARGS, jac=True, method="adamax", options=opts)
    np.testing.assert_array_equal(res.x, ref.x)
    assert res.nit == ref.nit == 50


def test_written_out_keeps_the_file_line_numbers():
    # a traceback (or numba's error message) from the rewritten loop points
    # at the loop's own lines in first_order.py, the written-out body at its call
    import inspect

    from fastopt.drivers import first_order as fo
    from fastopt.drivers._checks import accept

    loop = fo.written_out(fo.deterministic_loop, {"step": fo.rule_step, "accept": accept.py_func})
    assert loop.__code__.co_filename == inspect.getsourcefile(fo.deterministic_loop)
    assert loop.__code__.co_firstlineno == fo.deterministic_loop.__code__.co_firstlineno
    src, first = inspect.getsourcelines(fo.deterministic_loop)
    span = range(first, first + len(src))
    assert {ln for _, _, ln in loop.__code__.co_lines() if ln is not None} <= set(span)


def _neg_ls_f(w, X, y, fbad, gbad):
    return -py_ls_f(w, X, y, fbad, gbad)


def _neg_ls_g(w, X, y, fbad, gbad):
    return -py_ls_g(w, X, y, fbad, gbad)


@pytest.mark.parametrize("variant", ["irprop+", "rprop+", "irprop-"])
def test_rprop_maximize_through_minimize_mirrors_minimize(variant):
    """``maximize=True`` on -f takes the steps that minimizing f takes.

    iRprop+ backtracks when the error went up; maximizing, the error is -f
    (issue 11: the minimize loops read "up" as f going up whatever maximize
    said).  The optimizer API takes the same steps.
    """
    opts = {"learning_rate": 0.05, "variant": variant, "maxiter": 40, "gtol": 0.0}
    ref = fastopt.minimize(py_ls_f, np.zeros(3), args=LS_ARGS, jac=py_ls_g, method="rprop",
                           options=opts)  # fmt: skip
    mx = fastopt.minimize(_neg_ls_f, np.zeros(3), args=LS_ARGS, jac=_neg_ls_g, method="rprop",
                          options={**opts, "maximize": True})  # fmt: skip
    np.testing.assert_array_equal(mx.x, ref.x)
    assert mx.fun == -ref.fun and mx.nit == ref.nit
    # opt.step agrees
    opt = fastopt.optimizer("rprop", learning_rate=0.05, variant=variant, maximize=True)
    x, state = np.zeros(3), None
    state = opt.init(x)
    for _ in range(ref.nit):
        state = opt.step(x, _neg_ls_g(x, *LS_ARGS), state, value=_neg_ls_f(x, *LS_ARGS))
    np.testing.assert_array_equal(x, ref.x)
