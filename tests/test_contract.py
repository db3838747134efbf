"""scipy's own generic ``minimize`` checks, held for every fastopt method.

fastopt's versions of the checks in scipy's ``optimize/tests/test_optimize.py``
that apply to any method (``CheckOptimize``, ``test_minimize_callback_copies_array``,
``test_x_overwritten_user_function``, ``test_duplicate_evaluations``, ...;
shared/reference/next-steps.md section 1), parametrized over the registry,
through ``fastopt.minimize`` and ``as_scipy_method``.  Each defect found by
them has a reproducer here too (issue 11); the ones that crashed the process
run in a subprocess.
"""

import copy
import os
import pickle
import subprocess
import sys
import textwrap
import warnings

import numba
import numpy as np
import pytest
import scipy.optimize
from scipy.optimize import OptimizeWarning, check_grad, rosen, rosen_der

import fastopt
from fastopt import _status

METHODS = fastopt.METHODS
SECOND_ORDER = ("scg", "lbfgs", "hessian-free", "adahessian")
HESSP_METHODS = ("scg", "hessian-free", "adahessian")
#: methods that accept bounds (the others raise a ValueError naming lbfgs)
BOUNDED = tuple(m for m in METHODS if m not in ("scg", "hessian-free", "adahessian"))
#: options under which each first-order rule solves the entropy problem
OPTS = {
    "sgd": {"learning_rate": 1.0},
    "momentum": {"learning_rate": 0.5, "momentum": 0.9},
    "nag": {"learning_rate": 0.5, "momentum": 0.9},
    "rprop": {},
    "adagrad": {"learning_rate": 0.5},
    "rmsprop": {"learning_rate": 0.01},
    "adadelta": {"learning_rate": 1.0},
    "adam": {"learning_rate": 0.05},
    "adamw": {"learning_rate": 0.05, "weight_decay": 0.0},
    "adamax": {"learning_rate": 0.05},
    "nadam": {"learning_rate": 0.05},
    "radam": {"learning_rate": 0.05},
}


def opts(method, **kw):
    return {**OPTS.get(method, {}), "maxiter": 5000, **kw}


# --------------------------------------------------------------------------
# CheckOptimize: the entropy-maximisation problem
# --------------------------------------------------------------------------
F = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 1], [1, 0, 0], [1, 0, 0]], dtype=float)
K = np.array([1.0, 0.3, 0.5])
SOLUTION = np.array([0.0, -0.524869316, 0.487525860])


def ent_f(x):
    lp = F @ x
    return float(np.log(np.exp(lp).sum()) - K @ x)


def ent_g(x):
    lp = F @ x
    p = np.exp(lp - np.log(np.exp(lp).sum()))
    return F.T @ p - K


def ent_hessp(x, v):
    lp = F @ x
    p = np.exp(lp - np.log(np.exp(lp).sum()))
    m = F.T @ p
    return F.T @ (p * (F @ v)) - m * (m @ v)


def ent_fg(x):
    return ent_f(x), ent_g(x)


def test_entropy_problem_gradients():
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.standard_normal(3)
        assert check_grad(ent_f, ent_g, x) < 1e-6
        v = rng.standard_normal(3)
        fd = (ent_g(x + 1e-6 * v) - ent_g(x - 1e-6 * v)) / 2e-6
        np.testing.assert_allclose(ent_hessp(x, v), fd, atol=1e-7)


@pytest.mark.parametrize("jac", ["callable", True, "2-point", "3-point", None])
@pytest.mark.parametrize("method", METHODS)
def test_check_optimize(method, jac):
    fun = ent_fg if jac is True else ent_f
    j = ent_g if jac == "callable" else jac
    hessp = ent_hessp if method in HESSP_METHODS else None
    res = fastopt.minimize(fun, np.zeros(3), jac=j, hessp=hessp, method=method,
                           options=opts(method))  # fmt: skip
    assert res.success, res.message
    assert abs(ent_f(res.x) - ent_f(SOLUTION)) < 1e-6
    assert res.fun == pytest.approx(ent_f(res.x), abs=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_check_optimize_through_scipy(method):
    res = scipy.optimize.minimize(ent_f, np.zeros(3), jac=ent_g,
                                  method=fastopt.as_scipy_method(method),
                                  options=opts(method))  # fmt: skip
    assert res.success and abs(res.fun - ent_f(SOLUTION)) < 1e-6


# --------------------------------------------------------------------------
# Counting: nfev / njev are the calls the user's functions received
# --------------------------------------------------------------------------
class Counted:
    """Counts calls and keeps every point it was called at (copies)."""

    def __init__(self, fn):
        self.fn = fn
        self.points = []

    def __call__(self, x, *args):
        self.points.append(np.array(x, copy=True))
        return self.fn(x, *args)

    @property
    def n(self):
        return len(self.points)


@pytest.mark.parametrize("jac", ["callable", True, "2-point"])
@pytest.mark.parametrize("method", METHODS)
def test_counts_are_the_calls_received(method, jac):
    f = Counted(ent_fg if jac is True else ent_f)
    g = Counted(ent_g)
    res = fastopt.minimize(f, np.zeros(3), jac=g if jac == "callable" else jac,
                           method=method, options=opts(method, maxiter=30))  # fmt: skip
    assert res.nfev == f.n
    if jac == "callable":
        assert res.njev == g.n
    assert g.n == 0 or jac == "callable"


@pytest.mark.parametrize("jac", ["callable", True, "2-point"])
@pytest.mark.parametrize("method", METHODS)
def test_no_duplicate_evaluations(method, jac):
    # scipy test_duplicate_evaluations: no point is evaluated twice in a row
    f = Counted(rosen if jac != True else (lambda x: (rosen(x), rosen_der(x))))  # noqa: E712
    g = Counted(rosen_der)
    fastopt.minimize(f, np.array([-1.2, 1.0]), jac=g if jac == "callable" else jac,
                     method=method, options={"maxiter": 50})  # fmt: skip
    for pts in (f.points, g.points):
        for a, b in zip(pts, pts[1:], strict=False):
            assert not np.array_equal(a, b), "a point was evaluated twice in a row"


# --------------------------------------------------------------------------
# Callbacks and user functions get copies; StopIteration; intermediate_result
# --------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_callback_copies_array(method):
    seen = []

    def cb(x):
        seen.append(x)
        x[:] = 1e3  # must not change the run

    res = fastopt.minimize(ent_f, np.zeros(3), jac=ent_g, method=method, callback=cb,
                           options=opts(method, maxiter=5))  # fmt: skip
    ref = fastopt.minimize(ent_f, np.zeros(3), jac=ent_g, method=method,
                           options=opts(method, maxiter=5))  # fmt: skip
    np.testing.assert_array_equal(res.x, ref.x)
    assert len({id(s) for s in seen}) == len(seen)


@pytest.mark.parametrize("method", METHODS)
def test_x_overwritten_user_function(method):
    # scipy gh-13740: a function that overwrites (or keeps) the array it is
    # given must not change the run
    kept = []

    def f(x):
        v = ent_f(x)
        kept.append(x)
        x[:] = 17.0
        return v

    def g(x):
        out = ent_g(x)
        x[:] = -5.0
        return out

    def hp(x, v):
        out = ent_hessp(x, v)
        x[:] = 3.0
        v[:] = 2.0
        return out

    hessp = hp if method in HESSP_METHODS else None
    hessp_ref = ent_hessp if method in HESSP_METHODS else None
    res = fastopt.minimize(f, np.zeros(3), jac=g, hessp=hessp, method=method,
                           options=opts(method, maxiter=20))  # fmt: skip
    ref = fastopt.minimize(ent_f, np.zeros(3), jac=ent_g, hessp=hessp_ref, method=method,
                           options=opts(method, maxiter=20))  # fmt: skip
    np.testing.assert_array_equal(res.x, ref.x)
    assert res.nit == ref.nit


@pytest.mark.parametrize("method", METHODS)
def test_callback_stopiteration_and_intermediate_result(method):
    calls = []

    def cb(intermediate_result):
        calls.append(intermediate_result)
        if len(calls) == 3:
            raise StopIteration

    res = fastopt.minimize(ent_f, np.zeros(3), jac=ent_g, method=method, callback=cb,
                           options=opts(method))  # fmt: skip
    assert res.status == _status.CALLBACK and not res.success
    assert res.nit == 3 and len(calls) == 3
    assert calls[-1].fun == pytest.approx(ent_f(calls[-1].x))


# --------------------------------------------------------------------------
# maxiter, scalar x0, 1-element fun, result shapes
# --------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_respect_maxiter(method):
    for maxiter in (1, 2, 7):
        res = fastopt.minimize(rosen, np.array([-1.2, 1.0]), jac=rosen_der, method=method,
                               options={"maxiter": maxiter})  # fmt: skip
        assert res.nit <= maxiter
        assert res.status == _status.MAXITER and not res.success


@pytest.mark.parametrize("method", METHODS)
def test_maxiter_forms(method):
    kw = dict(jac=ent_g, method=method)
    a = fastopt.minimize(ent_f, np.zeros(3), options=opts(method, maxiter=np.inf), **kw)
    assert a.success
    b = fastopt.minimize(ent_f, np.zeros(3), options=opts(method, maxiter=3.0), **kw)
    c = fastopt.minimize(ent_f, np.zeros(3), options=opts(method, maxiter=np.int32(3)), **kw)
    np.testing.assert_array_equal(b.x, c.x)
    for bad in (1.7, "10", -1, True, None.__class__):
        with pytest.raises(ValueError, match="maxiter"):
            fastopt.minimize(ent_f, np.zeros(3), options={"maxiter": bad}, **kw)


@pytest.mark.parametrize("method", METHODS)
def test_result_x_shape_when_len_x_is_one(method):
    # scipy: fun may return a 1-element array, x0 may be a scalar
    def f(x):
        return np.array([(x[0] - 2.0) ** 2])

    def g(x):
        return np.array([2.0 * (x[0] - 2.0)])

    for x0 in (0.5, np.array([0.5]), np.float32(0.5), 1):
        res = fastopt.minimize(f, x0, jac=g, method=method, options=opts(method, maxiter=3))
        assert res.x.shape == (1,)
        assert isinstance(res.fun, float)
    res = fastopt.minimize(lambda x: np.array(f(x)[0]), 0.5, jac=g, method=method,
                           options=opts(method, maxiter=3))  # fmt: skip
    assert res.x.shape == (1,)


@pytest.mark.parametrize("method", METHODS)
def test_fun_returns_one_element_array_compiled(method):
    res = fastopt.minimize(_one_elem_f, np.zeros(2), jac=_one_elem_g, method=method,
                           options=opts(method, maxiter=3))  # fmt: skip
    assert np.isfinite(res.fun) and res.x.shape == (2,)


@pytest.mark.parametrize("method", METHODS)
def test_repeated_call_equals_validated_call(method):
    """A repeated call skips validation (``_minimize._Plan``): same run, same result.

    After test_fun_returns_one_element_array_compiled, whose compiled loops
    it reuses; more cases in test_repeat_calls.py.
    """
    from fastopt import _minimize

    x0 = np.array([0.5, -0.25])
    o = opts(method, maxiter=3)
    runs = [fastopt.minimize(_one_elem_f, x0, jac=_one_elem_g, method=method, options=o)
            for _ in range(3)]  # fmt: skip
    planned = any(k[0] is _one_elem_f and k[2] == method for k in _minimize._PLANS)
    assert planned == (method != "nadam")
    for k in ("x", "fun", "jac", "nit", "status", "message"):
        np.testing.assert_array_equal(runs[0][k], runs[1][k], err_msg=k)
        np.testing.assert_array_equal(runs[1][k], runs[2][k], err_msg=k)
    # the first call's type-checking evaluation at x0 is its only extra call
    assert 0 <= runs[0].nfev - runs[1].nfev <= 1 and runs[1].nfev == runs[2].nfev
    assert runs[1].x is not runs[2].x
    np.testing.assert_array_equal(x0, [0.5, -0.25])


@numba.njit
def _one_elem_f(x):
    return np.array([(x[0] - 1.0) ** 2 + (x[1] - 2.0) ** 2])


@numba.njit
def _one_elem_g(x):
    return np.array([2.0 * (x[0] - 1.0), 2.0 * (x[1] - 2.0)])


# --------------------------------------------------------------------------
# NaN: a failure, never a success; the last good iterate is kept
# --------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_nan_values(method):
    rng = np.random.default_rng(1234)
    count = [0]

    def nan_always(x):
        return np.nan

    def nan_later(x):
        count[0] += 1
        return np.nan if count[0] > 2 else float(rng.random())

    for f in (nan_always, nan_later):
        count[0] = 0
        with np.errstate(invalid="ignore"):
            res = fastopt.minimize(f, np.array([1.0]), jac=lambda x: np.array([1.0]),
                                   method=method, options={"maxiter": 50})  # fmt: skip
        assert not res.success
        assert np.all(np.isfinite(res.x))


@pytest.mark.parametrize("method", SECOND_ORDER[:3])
def test_no_increase(method):
    # scipy test_no_increase: a wrong gradient makes the line search fail;
    # the returned point is never worse than x0 (line-search methods)
    def func(x):
        return float((x[0] - 1) ** 2)

    def bad_grad(x):
        return np.array([2 * (x[0] - 1) * (-1) - 2])

    x0 = np.array([2.0])
    res = fastopt.minimize(func, x0, jac=bad_grad, method=method, options={"maxiter": 20})
    assert func(res.x) == res.fun
    assert res.fun <= func(x0)


#: scipy test_initial_step_scaling's scales per method: like scipy's L-BFGS-B
#: and Newton-CG (skipped there below 1e-10), the methods with an absolute
#: term (lbfgs's ftol floor of 1, SCG's and HF's damping lambda, Adam's eps,
#: SGD's fixed rate) return the start or crawl on a 1e-50 objective
STEP_SCALES = {
    "sgd": (1.0,),
    "adam": (1.0, 1e50),
    "rprop": (1e-50, 1.0, 1e50),
    "scg": (1.0, 1e50),
    "lbfgs": (1.0, 1e50),
    "hessian-free": (1.0, 1e50),
}


@pytest.mark.parametrize("method", STEP_SCALES)
def test_initial_step_scaling(method):
    # a huge objective does not make the first step huge
    for scale in STEP_SCALES[method]:
        x0 = np.array([-1.0])
        first_step = [None]

        def f(x, scale=scale, x0=x0, first_step=first_step):
            if first_step[0] is None and x[0] != x0[0]:
                first_step[0] = abs(x[0] - x0[0])
            if abs(x).max() > 1e4:
                raise AssertionError("Optimization stepped far away!")
            return scale * float((x[0] - 1) ** 2)

        def g(x, scale=scale):
            return np.array([scale * 2 * (x[0] - 1)])

        options = {"maxiter": 2000, "gtol": scale * 1e-5}
        if method in ("sgd", "adam"):
            options["learning_rate"] = 0.1
        res = fastopt.minimize(f, x0, jac=g, method=method, options=options)
        assert res.success, (scale, res.message)
        np.testing.assert_allclose(res.x, [1.0], atol=1e-5, err_msg=str(scale))  # gtol 1e-5
        assert first_step[0] < 10.0, (scale, first_step)  # the Newton step is 2


# --------------------------------------------------------------------------
# Bounds
# --------------------------------------------------------------------------
@pytest.mark.parametrize("method", BOUNDED)
def test_solution_on_a_bound_is_a_success(method):
    # the gtol test is on the projected gradient: an optimum on a bound
    # stops in a few iterations (not maxiter)
    res = fastopt.minimize(lambda x: float(((x - 3) ** 2).sum()), np.zeros(3),
                           jac=lambda x: 2 * (x - 3), method=method, bounds=[(0, 1)] * 3,
                           options=opts(method, maxiter=1000))  # fmt: skip
    assert res.success, res.message
    np.testing.assert_allclose(res.x, 1.0)
    assert res.nit < 1000


@pytest.mark.parametrize("method", BOUNDED)
def test_all_bounds_equal(method):
    res = fastopt.minimize(rosen, np.array([0.5, 0.5]), jac=rosen_der, method=method,
                           bounds=[(0.7, 0.7), (0.2, 0.2)], options={"maxiter": 100})  # fmt: skip
    assert res.success
    np.testing.assert_array_equal(res.x, [0.7, 0.2])


@pytest.mark.parametrize("method", BOUNDED)
@pytest.mark.parametrize("jac", [None, "3-point"])
@pytest.mark.parametrize("bounds", [[(0.7, 0.7), (0.2, 0.2)], [(-2, 0.5), (-2, 0.2)],
                                    [(0.7, 0.7), (-1, 1)]])  # fmt: skip
def test_finite_differences_stay_in_the_box(method, jac, bounds):
    """Finite differences with bounds: ``fun`` is never called outside the box.

    One-sided steps next to a bound, and no difference at all for a variable
    fixed by equal bounds (its step would leave the box: issue 11).
    """
    seen = []

    def f(x):
        seen.append(x.copy())
        return rosen(x)

    lb, ub = np.array(bounds, dtype=float).T
    x0 = np.clip(np.array([0.5, 0.5]), lb, ub)
    res = fastopt.minimize(f, x0, jac=jac, method=method, bounds=bounds,
                           options=opts(method, maxiter=50))  # fmt: skip
    pts = np.array(seen)
    assert np.all((pts >= lb) & (pts <= ub))
    assert np.all(np.isfinite(res.jac)) and np.all((res.x >= lb) & (res.x <= ub))
    if (lb == ub).all():
        assert res.success
        np.testing.assert_array_equal(res.x, lb)


@pytest.mark.parametrize(
    "bounds, match",
    [
        ([(np.nan, 1.0), (0, 1)], "lower bound at index 0 is NaN"),
        ([(0, 1), (0, np.nan)], "upper bound at index 1 is NaN"),
        ([(2, 1), (0, 1)], r"lower bound 2.0 > upper bound 1.0 at index 0"),
        ([(0, 1), (np.inf, np.inf)], "lower bound at index 1 is inf"),
        ([(-np.inf, -np.inf), (0, 1)], "upper bound at index 0 is -inf"),
        ([1, 2], r"bounds\[0\] must be a \(min, max\) pair"),
        ([(0, "a"), (0, 1)], r"bounds\[0\]\[1\] must be a number"),
        ([(0, 1)], "bounds has 1 pairs but x0 has 2"),
        (5, "bounds must be a sequence"),
    ],
)
def test_bad_bounds(bounds, match):
    with pytest.raises(ValueError, match=match):
        fastopt.minimize(rosen, np.zeros(2), jac=rosen_der, method="adam", bounds=bounds)


@pytest.mark.parametrize("method", ["scg", "hessian-free"])
def test_bounds_in_unbounded_methods_name_lbfgs(method):
    with pytest.raises(ValueError, match="lbfgs"):
        fastopt.minimize(rosen, np.zeros(2), jac=rosen_der, method=method, bounds=[(0, 1)] * 2)


# --------------------------------------------------------------------------
# Bad input: a ValueError or TypeError naming the argument
# --------------------------------------------------------------------------
def _bad(**kw):
    base = dict(fun=rosen, x0=np.array([-1.2, 1.0]), jac=rosen_der, method="adam")
    base.update(kw)
    return base


ERROR_INPUTS = [
    ("maxiter_float", _bad(options={"maxiter": 1.7}), ValueError, "maxiter"),
    ("maxiter_str", _bad(options={"maxiter": "10"}), ValueError, "maxiter"),
    ("gtol_str", _bad(options={"gtol": "1e-5"}), ValueError, "gtol"),
    ("gtol_negative", _bad(options={"gtol": -1.0}), ValueError, "gtol"),
    ("tol_str", _bad(tol="small"), ValueError, "tol"),
    ("seed_str", _bad(options={"seed": "abc"}), ValueError, "seed"),
    ("batch_size_float", _bad(options={"batch_size": 2.5}), ValueError, "batch_size"),
    ("options_list", _bad(options=[("maxiter", 3)]), TypeError, "options must be a dict"),
    ("jac_array", _bad(jac=np.zeros(2)), ValueError, "Invalid jac"),
    ("jac_str", _bad(jac="4-point"), ValueError, "Invalid jac"),
    ("fun_none_return", _bad(fun=lambda x: None), TypeError, r"fun must return a real number"),
    ("fun_str_return", _bad(fun=lambda x: "a"), TypeError, r"fun must return a real number"),
    ("fun_vector_return", _bad(fun=lambda x: x), ValueError, r"fun must return a scalar"),
    ("fun_not_callable", _bad(fun=3.0), TypeError, "fun must be callable"),
    ("jac_true_scalar", _bad(jac=True), TypeError, r"jac=True"),
    ("jac_none_return", _bad(jac=lambda x: None), TypeError, "jac must return"),
    ("jac_2d", _bad(jac=lambda x: np.zeros((2, 1))), ValueError, r"jac must return.*\(2,\)"),
    ("callback_not_callable", _bad(callback=3), TypeError, "callback must be callable"),
    ("hessp_not_callable", _bad(method="scg", hessp="no"), TypeError, "hessp must be callable"),
    ("x0_str", _bad(x0="abc"), ValueError, "x0"),
    ("x0_2d", _bad(x0=np.zeros((2, 2))), ValueError, "x0 must be 1-D"),
    ("x0_nan", _bad(x0=np.array([np.nan, 1.0])), ValueError, "x0 must be finite"),
    ("method_unknown", _bad(method="bfgs2"), ValueError, "Unknown method"),
]


@pytest.mark.parametrize("kw, exc, match", [e[1:] for e in ERROR_INPUTS],
                         ids=[e[0] for e in ERROR_INPUTS])  # fmt: skip
@pytest.mark.parametrize("front", ["fastopt", "scipy"])
def test_error_inputs(front, kw, exc, match):
    kw = dict(kw)
    if front == "scipy":
        if "tol" in kw or "options" in kw and not isinstance(kw["options"], dict):
            pytest.skip("scipy validates these itself")
        if kw["method"] == "bfgs2" or not callable(kw["fun"]):
            pytest.skip("scipy validates these itself")
        jac = kw.get("jac")
        if jac is True or isinstance(jac, np.ndarray | str) or np.ndim(kw["x0"]) > 1:
            pytest.skip("scipy wraps or checks jac and x0 itself")
        kw["method"] = fastopt.as_scipy_method(kw["method"])
        call = scipy.optimize.minimize
    else:
        call = fastopt.minimize
    with pytest.raises(exc, match=match), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        call(**kw)


def test_minibatch_warnings():
    X = np.arange(12.0).reshape(6, 2)

    def fg(w, Xb):
        r = Xb @ w - 1.0
        return float(r @ r) / len(Xb), 2.0 * Xb.T @ r / len(Xb)

    with pytest.warns(OptimizeWarning, match="gtol is ignored in minibatch mode"):
        fastopt.minimize(fg, np.zeros(2), args=(X,), jac=True, method="adam",
                         options={"batch_size": 2, "gtol": 1e-3})  # fmt: skip


# --------------------------------------------------------------------------
# Memory safety: a gradient or product that changes length mid-run
# --------------------------------------------------------------------------
CHANGING = textwrap.dedent(
    """
    import sys
    import numpy as np, numba, fastopt
    from scipy.optimize import rosen, rosen_der
    kind = sys.argv[1]

    def fg_py(x, k, short):
        k[0] += 1
        g = rosen_der(x)
        if k[0] >= 4:
            g = g[:1] if short else np.concatenate([g, g, g])
        return rosen(x), g

    @numba.njit
    def fg_jit(x, k, short):
        k[0] += 1
        a = 1.0 - x[0]
        b = x[1] - x[0] * x[0]
        n = 2 if k[0] < 4 else (1 if short else 6)
        g = np.zeros(n)
        g[0] = -2 * a - 400 * x[0] * b
        if n > 1:
            g[1] = 200 * b
        return a * a + 100 * b * b, g

    fg = fg_py if kind == "python" else fg_jit
    for method in fastopt.METHODS:
        for short in (True, False):
            try:
                fastopt.minimize(fg, np.array([-1.2, 1.0]), args=(np.zeros(1, np.int64), short),
                                 jac=True, method=method, options={"maxiter": 200})
                print(method, short, "no error", flush=True)
            except ValueError as e:
                ok = "length" in str(e) or "shape" in str(e)
                print(method, short, "ValueError" if ok else repr(e), flush=True)
    """
)


@pytest.mark.parametrize("kind", ["python", "compiled"])
def test_gradient_changing_length_mid_run(tmp_path, kind):
    # numba does no bounds checking: a gradient whose length changes after
    # the first call was read past (first-order) or written past (adahessian,
    # hessian-free: a segfault).  Now: a ValueError in every method, on
    # every path.  In a subprocess, so that a crash fails this test only.
    script = tmp_path / "changing.py"
    script.write_text(CHANGING)
    out = subprocess.run([sys.executable, str(script), kind], capture_output=True, text=True,
                         timeout=900, env={**os.environ, "PYTHONWARNINGS": "ignore"})  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2 * len(METHODS), out.stdout + out.stderr
    assert all(line.endswith("ValueError") for line in lines), out.stdout


PRODUCTS = textwrap.dedent(
    """
    import sys
    import numpy as np, numba, fastopt
    kind = sys.argv[1]

    def hessp_py(x, v, k):
        k[0] += 1
        out = np.array([1202.0 * v[0] - 480.0 * v[1], -480.0 * v[0] + 200.0 * v[1]])
        return out if k[0] < 3 else out[:1]

    @numba.njit
    def hessp_jit(x, v, k):
        k[0] += 1
        out = np.zeros(2 if k[0] < 3 else 1)
        out[0] = v[0]
        if out.shape[0] > 1:
            out[1] = v[1]
        return out

    @numba.njit
    def fg(x, k):
        a = 1.0 - x[0]
        b = x[1] - x[0] * x[0]
        g = np.empty(2)
        g[0] = -2 * a - 400 * x[0] * b
        g[1] = 200 * b
        return a * a + 100 * b * b, g

    def fg_py(x, k):
        return fg(x, k)

    for method in ("scg", "hessian-free", "adahessian"):
        try:
            fastopt.minimize(fg if kind == "compiled" else fg_py, np.array([-1.2, 1.0]),
                             args=(np.zeros(1, np.int64),), jac=True,
                             hessp=hessp_jit if kind == "compiled" else hessp_py,
                             method=method, options={"maxiter": 50})
            print(method, "no error", flush=True)
        except ValueError as e:
            print(method, "ValueError" if "length" in str(e) or "shape" in str(e) else repr(e),
                  flush=True)
    """
)


@pytest.mark.parametrize("kind", ["python", "compiled"])
def test_product_changing_length_mid_run(tmp_path, kind):
    script = tmp_path / "products.py"
    script.write_text(PRODUCTS)
    out = subprocess.run([sys.executable, str(script), kind], capture_output=True, text=True,
                         timeout=900, env={**os.environ, "PYTHONWARNINGS": "ignore"})  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == len(HESSP_METHODS), out.stdout + out.stderr
    assert all(line.endswith("ValueError") for line in lines), out.stdout


# --------------------------------------------------------------------------
# Small things users hit
# --------------------------------------------------------------------------
def test_as_scipy_method_pickles_and_deepcopies():
    m = fastopt.as_scipy_method("adam")
    for m2 in (pickle.loads(pickle.dumps(m)), copy.deepcopy(m)):
        a = scipy.optimize.minimize(ent_f, np.zeros(3), jac=ent_g, method=m2,
                                    options=opts("adam", maxiter=50))  # fmt: skip
        b = scipy.optimize.minimize(ent_f, np.zeros(3), jac=ent_g, method=m,
                                    options=opts("adam", maxiter=50))  # fmt: skip
        np.testing.assert_array_equal(a.x, b.x)


def test_lazy_submodules():
    code = (
        "import sys, fastopt\n"
        "assert 'fastopt.models' not in sys.modules and 'sklearn' not in sys.modules\n"
        "fastopt.models.LogisticRegression\n"
        "fastopt.testing.rosenbrock\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert out.stdout.strip() == "ok", out.stderr


def test_caches_are_bounded():
    from fastopt._user import GLUE_CACHE_SIZE, BoundedCache

    cache = BoundedCache(3)
    for k in range(10):
        cache.get_or_make(k, lambda k=k: k * k)
    assert list(cache) == [7, 8, 9]
    cache[10] = 0
    assert len(cache) == 3 and 7 not in cache
    from fastopt.drivers import first_order
    from fastopt.solvers import scg

    assert first_order._COMPILED.maxsize == GLUE_CACHE_SIZE
    assert scg._LOOP._bound.maxsize == GLUE_CACHE_SIZE


def test_works_without_a_writable_cache(tmp_path):
    # a read-only install, NUMBA_CACHE_DIR and HOME: import warns once and
    # everything compiles in memory.  (Root can write anywhere, so the
    # cache locations are made unusable by putting files where numba needs
    # directories.)
    import shutil

    pkg = tmp_path / "site"
    shutil.copytree(os.path.dirname(fastopt.__file__), pkg / "fastopt",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    for root, _dirs, _files in os.walk(pkg):
        open(os.path.join(root, "__pycache__"), "w").close()
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    code = (
        "import warnings, numpy as np\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    import fastopt\n"
        "msgs = [str(x.message) for x in w if 'no writable cache' in str(x.message)]\n"
        "assert len(msgs) == 1, msgs\n"
        "assert not fastopt._jit.CACHE\n"
        "from scipy.optimize import rosen, rosen_der\n"
        "for m in ('adam', 'lbfgs'):\n"
        "    r = fastopt.minimize(rosen, np.array([-1.2, 1.0]), jac=rosen_der, method=m,\n"
        "                         options={'maxiter': 2})\n"
        "    assert r.nit == 2\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(pkg), "HOME": str(blocker),
           "NUMBA_CACHE_DIR": str(blocker), "XDG_CACHE_HOME": str(blocker),
           "PYTHONDONTWRITEBYTECODE": "1"}  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600, env=env, cwd=str(tmp_path))  # fmt: skip
    assert out.stdout.strip().endswith("ok"), out.stdout + out.stderr


def test_rprop_schedule_warns_through_minimize():
    with pytest.warns(UserWarning, match="rprop: a learning-rate schedule has no effect") as rec:
        options = {"schedule": fastopt.schedules.cosine(10), "maxiter": 3}
        fastopt.minimize(ent_f, np.zeros(3), jac=ent_g, method="rprop", options=options)
    assert rec[0].filename == __file__
