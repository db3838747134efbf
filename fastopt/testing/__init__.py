"""Deterministic test problems with exact derivatives, for every fastopt solver.

Each problem is a :class:`Problem`: a standard start ``x0``, the known minimum
``f_star`` (and ``x_star`` where known), plain-Python ``fun``/``grad``/
``fun_and_grad``/``hessp``/``gauss_newton`` (and ``residuals``/``jacobian``
for least squares), and ``fun_jit``/``grad_jit``/``hessp_jit``, ``@njit``
dispatchers compiled from the same source for fastopt's compiled drivers.
Nothing is compiled at import; each dispatcher compiles on its first call.

- :data:`MGH_PROBLEMS`, :func:`get_problem`: 26 least-squares problems of
  Moré, Garbow & Hillstrom (1981) [1]_ (module :mod:`fastopt.testing.mgh`).
- :func:`rosenbrock`: the chained Rosenbrock function of
  ``scipy.optimize.rosen`` in any dimension.
- :func:`ill_conditioned_quadratic`: a convex quadratic with a chosen
  condition number and a random eigenbasis.
- :func:`diagonal_quadratic`: one whose conditioning lies on the diagonal
  (the case of a diagonal preconditioner).
- :func:`logistic_regression_data`: a synthetic L2-regularised logistic
  regression, the showcase objective.
- :data:`beale`, :data:`saddle`: two-dimensional problems for pictures.

References
----------
.. [1] J. J. Moré, B. S. Garbow and K. E. Hillstrom, "Testing unconstrained
   optimization software", ACM Trans. Math. Softw. 7(1):17-41, 1981.

Examples
--------
>>> import numpy as np
>>> from fastopt.testing import MGH_PROBLEMS
>>> p = MGH_PROBLEMS["freudenstein_roth"]
>>> float(p.fun(p.x0)), p.f_star, p.local_minima
(400.5, 0.0, (48.9842,))
>>> bool(np.allclose(p.grad_jit(p.x0.copy()), p.grad(p.x0)))
True
"""

import numbers

import numba
import numpy as np

from fastopt._jit import KERNEL
from fastopt.testing.mgh import (
    MGH_PROBLEMS,
    Problem,
    _jit,
    _jitable,
    _ls_fun,
    _ls_gn,
    _ls_grad,
    _ls_hessp,
    get_problem,
    problem_names,
)

__all__ = [
    "MGH_PROBLEMS",
    "Problem",
    "beale",
    "get_problem",
    "diagonal_quadratic",
    "ill_conditioned_quadratic",
    "logistic_regression_data",
    "problem_names",
    "rosenbrock",
    "saddle",
]

# Problems built from run-time data (a random matrix, a data set) are closures
# over that data; numba cannot cache a closure, so they compile per process.
_CLOSURE_JIT = {k: v for k, v in KERNEL.items() if k != "cache"}


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"Invalid {name} value: {value!r} (an int is required)")
    if value < minimum:
        raise ValueError(f"Invalid {name} value: {value} (must be >= {minimum})")
    return int(value)


# --------------------------------------------------------------------------
# Chained Rosenbrock (scipy.optimize.rosen):
# f = sum_{i<n} 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2, written as least squares with
# r_i = 10 (x_{i+1} - x_i^2) and r_{n-1+i} = 1 - x_i, i = 1..n-1.
# --------------------------------------------------------------------------
@_jitable
def _rosen_res(x):
    n = x.size
    r = np.empty(2 * (n - 1))
    r[: n - 1] = 10.0 * (x[1:] - x[:-1] ** 2)
    r[n - 1 :] = 1.0 - x[:-1]
    return r


@_jitable
def _rosen_jac(x):
    n = x.size
    J = np.zeros((2 * (n - 1), n))
    for i in range(n - 1):
        J[i, i] = -20.0 * x[i]
        J[i, i + 1] = 10.0
        J[n - 1 + i, i] = -1.0
    return J


@_jitable
def _rosen_rhv(x, w, v):
    out = np.zeros(x.size)
    out[:-1] = -20.0 * w[: x.size - 1] * v[:-1]
    return out


def _rosen_fun(x):
    return _ls_fun(_rosen_res(x))


def _rosen_grad(x):
    return _ls_grad(_rosen_res(x), _rosen_jac(x))


def _rosen_hessp(x, v):
    r = _rosen_res(x)
    return _ls_hessp(r, _rosen_jac(x), v, _rosen_rhv(x, r, v))


def _rosen_fun_and_grad(x):
    r = _rosen_res(x)
    return _ls_fun(r), _ls_grad(r, _rosen_jac(x))


def _rosen_gauss_newton(x, v):
    return _ls_gn(_rosen_jac(x), v)


_ROSEN_JIT = (_jit(_rosen_fun), _jit(_rosen_grad), _jit(_rosen_hessp))

# The local minimum near (-1, 1, ..., 1) that exists for n >= 4 (Kok & Sandrock
# 2009); BFGS from the standard start stops there for n = 7, 8, 10, 30, for
# example. Values computed here by Newton's method from (-1, 1, ..., 1), to the
# six digits the MGH paper uses; constant to six digits from n = 12 on.
_ROSEN_LOCAL = {
    4: 3.70143, 5: 3.93084, 6: 3.97394, 7: 3.98360,
    8: 3.98589, 9: 3.98644, 10: 3.98658, 11: 3.98661,
}  # fmt: skip


def rosenbrock(n=2):
    """The chained Rosenbrock function of ``scipy.optimize.rosen``, as least squares.

    .. math::

        f(x) = \\sum_{i=1}^{n-1} 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2
             = \\sum_{i=1}^{2(n-1)} r_i(x)^2

    Parameters
    ----------
    n : int, default 2
        Number of variables, ``n >= 2``; 2 and 100 are the usual choices.

    Returns
    -------
    Problem
        Start ``(-1.2, 1, -1.2, 1, ...)`` (the first ``n`` entries), ``f* = 0``
        at ``x* = (1, ..., 1)``, ``m = 2(n - 1)``, exact ``hessp``.
        ``local_minima`` holds the value of the local minimum near
        ``(-1, 1, ..., 1)`` that exists for ``n >= 4``.

    Notes
    -----
    For ``n = 2`` this is problem 1 of Moré, Garbow & Hillstrom (1981); their
    "extended Rosenbrock" (problem 21, ``get_problem("extended_rosenbrock")``)
    couples independent pairs ``(x_{2i-1}, x_{2i})`` instead of consecutive
    variables.

    References
    ----------
    H\\. H. Rosenbrock, "An automatic method for finding the greatest or least
    value of a function", Comput. J. 3:175-184, 1960.
    W\\. Kok and C. Sandrock, "Locating and characterizing the stationary points
    of the extended Rosenbrock function", Evol. Comput. 17(3):437-453, 2009.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.optimize import rosen
    >>> from fastopt.testing import rosenbrock
    >>> p = rosenbrock(100)
    >>> x = np.linspace(-1, 1, 100)
    >>> bool(np.isclose(p.fun(x), rosen(x)))
    True
    """
    n = _check_int("n", n, 2)
    local = _ROSEN_LOCAL.get(n, 3.98662) if n >= 4 else None
    return Problem(
        name=f"rosenbrock_{n}", n=n, m=2 * (n - 1),
        x0=np.resize([-1.2, 1.0], n), f_star=0.0, x_star=np.ones(n),
        fun=_rosen_fun, grad=_rosen_grad, fun_and_grad=_rosen_fun_and_grad,
        hessp=_rosen_hessp, gauss_newton=_rosen_gauss_newton,
        residuals=_rosen_res, jacobian=_rosen_jac,
        fun_jit=_ROSEN_JIT[0], grad_jit=_ROSEN_JIT[1], hessp_jit=_ROSEN_JIT[2],
        local_minima=() if local is None else (local,),
        notes="Chained Rosenbrock (scipy.optimize.rosen). local_minima computed here "
        "by Newton's method from (-1, 1, ..., 1).",
    )  # fmt: skip


# --------------------------------------------------------------------------
# Convex quadratic 0.5 x'Ax - b'x
# --------------------------------------------------------------------------
@_jitable
def _quad_fun(x, A, b):
    return 0.5 * np.dot(x, np.dot(A, x)) - np.dot(b, x)


@_jitable
def _quad_grad(x, A, b):
    return np.dot(A, x) - b


@_jitable
def _quad_hessp(A, v):
    return np.dot(A, v)


def _quadratic_functions(A, b):
    """Plain closures over the data; the same closures are what numba compiles."""

    def fun(x):
        return _quad_fun(x, A, b)

    def grad(x):
        return _quad_grad(x, A, b)

    def hessp(x, v):
        return _quad_hessp(A, v)

    return fun, grad, hessp


def ill_conditioned_quadratic(n, cond, seed=0):
    """A convex quadratic with log-spaced eigenvalues in a random orthonormal basis.

    .. math::

        f(x) = \\tfrac12 x^T A x - b^T x, \\qquad
        A = Q \\operatorname{diag}(\\lambda) Q^T, \\quad
        \\lambda_k = \\mathrm{cond}^{(k-1)/(n-1)}, \\; k = 1..n

    Parameters
    ----------
    n : int
        Number of variables, ``n >= 1``.
    cond : float
        Condition number of ``A`` (eigenvalues from 1 to ``cond``), ``>= 1``.
    seed : int, default 0
        Seed of ``numpy.random.default_rng`` for ``Q`` (Haar-distributed: QR of a
        Gaussian matrix with the signs of ``diag(R)`` folded in) and ``x*``.

    Returns
    -------
    Problem
        Start ``x0 = 0``; ``x*`` a standard normal vector, ``b = A x*``,
        ``f* = -0.5 x*^T A x*``; ``hessp`` and ``gauss_newton`` both return
        ``A v`` (for a quadratic the generalized Gauss–Newton matrix is the
        Hessian); ``m``, ``residuals`` and ``jacobian`` are ``None``. The
        jitted functions are closures over ``A`` and ``b``: compiled per
        process, never cached.

    Notes
    -----
    Conjugate gradients with exact steps solve it in at most ``n`` steps, and
    in about ``sqrt(cond)`` for a tolerance, which makes it the sharp test for
    SCG and the CG inner loop of Hessian-free. The random basis keeps ``A``
    dense, so a diagonal preconditioner cannot undo the conditioning. ``f*``
    and ``x*`` are exact up to the rounding of ``b = A x*`` (relative error
    about ``cond`` times machine epsilon in ``x*``).

    Examples
    --------
    >>> import numpy as np
    >>> from fastopt.testing import ill_conditioned_quadratic
    >>> p = ill_conditioned_quadratic(20, 1e4, seed=1)
    >>> bool(np.allclose(p.grad(p.x_star), 0.0, atol=1e-9))
    True
    """
    n, cond = _check_quadratic(n, cond)
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((n, n))
    Q, R = np.linalg.qr(G)
    Q = Q * np.sign(np.diag(R))  # Haar measure (Mezzadri 2007)
    lam = np.logspace(0.0, np.log10(cond), n)
    A = (Q * lam) @ Q.T
    A = np.ascontiguousarray(0.5 * (A + A.T))
    return _quadratic_problem(
        f"quadratic_{n}_cond{cond:g}_seed{seed}", A, rng.standard_normal(n),
        "0.5 x'Ax - b'x with eigenvalues log-spaced from 1 to cond.",
    )  # fmt: skip


def _check_quadratic(n, cond):
    n = _check_int("n", n, 1)
    cond = float(cond)
    if not (np.isfinite(cond) and cond >= 1.0):
        raise ValueError(f"Invalid cond value: {cond} (must be finite and >= 1)")
    return n, cond


def _quadratic_problem(name, A, x_star, notes):
    """The :class:`Problem` of ``0.5 x'Ax - b'x`` with ``b = A x*``, from ``x0 = 0``."""
    n = A.shape[0]
    b = A @ x_star
    fun, grad, hessp = _quadratic_functions(A, b)
    jit = numba.njit(**_CLOSURE_JIT)
    return Problem(
        name=name, n=n, m=None,
        x0=np.zeros(n), f_star=-0.5 * float(x_star @ b), x_star=x_star,
        fun=fun, grad=grad, fun_and_grad=lambda x: (fun(x), grad(x)),
        hessp=hessp, gauss_newton=hessp, residuals=None, jacobian=None,
        fun_jit=jit(fun), grad_jit=jit(grad), hessp_jit=jit(hessp), notes=notes,
    )  # fmt: skip


def diagonal_quadratic(n, cond, coupling=0.02, seed=0):
    """A convex quadratic whose conditioning lies on the diagonal.

    .. math::

        f(x) = \\tfrac12 x^T A x - b^T x, \\qquad A = S C S, \\quad
        S = \\operatorname{diag}\\big(\\sqrt{s_k}\\big), \\quad
        s_k = \\mathrm{cond}^{(k-1)/(n-1)},

    with ``C`` the identity plus ``coupling`` times a symmetric Gaussian matrix
    off the diagonal: the scales of the variables differ by ``cond``, and
    weak couplings keep ``A`` from being exactly diagonal.  It is the case a
    diagonal preconditioner (AdaHessian, Jacobi) is made for, beside
    :func:`ill_conditioned_quadratic`, whose random eigenbasis leaves
    ``diag(A)`` about the same in every coordinate.

    Parameters
    ----------
    n : int
        Number of variables, ``n >= 1``.
    cond : float
        Ratio of the largest to the smallest diagonal entry, ``>= 1``; the
        condition number of ``A`` is close to it (``Problem.notes`` has it).
    coupling : float, default 0.02
        Standard deviation of the off-diagonal entries of ``C`` before
        symmetrisation, ``>= 0``; ``C`` must stay positive definite
        (about ``coupling < 0.7 / sqrt(n)``).
    seed : int, default 0
        Seed of ``numpy.random.default_rng`` for ``C`` and ``x*``.

    Returns
    -------
    Problem
        Start ``x0 = 0``; ``x*`` a standard normal vector, ``b = A x*``,
        ``f* = -0.5 x*^T A x*``; ``hessp`` and ``gauss_newton`` return ``A v``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastopt.testing import diagonal_quadratic
    >>> p = diagonal_quadratic(100, 1e4)
    >>> bool(np.allclose(p.grad(p.x_star), 0.0, atol=1e-8))
    True
    """
    n, cond = _check_quadratic(n, cond)
    coupling = float(coupling)
    if not (np.isfinite(coupling) and coupling >= 0.0):
        raise ValueError(f"Invalid coupling value: {coupling} (must be finite and >= 0)")
    rng = np.random.default_rng(seed)
    d = np.logspace(0.0, np.log10(cond), n)
    s = np.sqrt(d)
    C = coupling * rng.standard_normal((n, n))
    C = 0.5 * (C + C.T)
    np.fill_diagonal(C, 1.0)
    low = float(np.linalg.eigvalsh(C)[0])
    if low <= 0.0:
        raise ValueError(
            f"Invalid coupling value: {coupling} (C is not positive definite for n={n}: "
            f"smallest eigenvalue {low:.3g})"
        )
    A = s[:, None] * C * s[None, :]
    A = np.ascontiguousarray(0.5 * (A + A.T))  # symmetric to the last bit
    np.fill_diagonal(A, d)  # and the diagonal exactly s_k
    return _quadratic_problem(
        f"diagonal_quadratic_{n}_cond{cond:g}_seed{seed}", A, rng.standard_normal(n),
        f"0.5 x'Ax - b'x, A = S C S, diagonal log-spaced from 1 to {cond:g}, "
        f"coupling {coupling:g}; cond(A) = {np.linalg.cond(A):.4g}.",
    )  # fmt: skip


# --------------------------------------------------------------------------
# L2-regularised logistic regression (labels in {0, 1})
# --------------------------------------------------------------------------
@_jitable
def _sigmoid(z):
    # 1 / (1 + exp(-z)) without overflow for large |z|
    return 0.5 * (1.0 + np.tanh(0.5 * z))


@_jitable
def _logistic_fun(w, X, y, l2):
    z = np.dot(X, w)
    # log(1 + e^z) - y z: the negative log-likelihood of y ~ Bernoulli(sigmoid(z))
    loss = np.logaddexp(0.0, z) - y * z
    return np.sum(loss) / X.shape[0] + 0.5 * l2 * np.dot(w, w)


@_jitable
def _logistic_grad(w, X, y, l2):
    z = np.dot(X, w)
    return np.dot(X.T, _sigmoid(z) - y) / X.shape[0] + l2 * w


@_jitable
def _logistic_hessp(w, v, X, l2):
    p = _sigmoid(np.dot(X, w))
    return np.dot(X.T, p * (1.0 - p) * np.dot(X, v)) / X.shape[0] + l2 * v


def _logistic_functions(X, y, l2):
    """Plain closures over the data; the same closures are what numba compiles."""

    def fun(w):
        return _logistic_fun(w, X, y, l2)

    def grad(w):
        return _logistic_grad(w, X, y, l2)

    def hessp(w, v):
        return _logistic_hessp(w, v, X, l2)

    return fun, grad, hessp


def logistic_regression_data(n_samples, n_features, seed=0, l2=1e-3):
    """A synthetic binary classification set and its L2-regularised logistic loss.

    .. math::

        f(w) = \\frac1N \\sum_{i=1}^N \\left[\\log(1 + e^{x_i^T w}) - y_i x_i^T w\\right]
               + \\frac{\\ell_2}{2} \\lVert w \\rVert^2

    Parameters
    ----------
    n_samples, n_features : int
        Shape of ``X``, both ``>= 1``.
    seed : int, default 0
        Seed of ``numpy.random.default_rng``.
    l2 : float, default 1e-3
        Ridge strength, ``> 0`` so that the minimizer is unique.

    Returns
    -------
    X : ndarray, shape (n_samples, n_features)
        Standard normal features (no intercept column; append ones for one).
    y : ndarray, shape (n_samples,)
        Labels in {0.0, 1.0}, drawn from ``Bernoulli(sigmoid(X w_true))`` with
        ``w_true`` standard normal scaled by ``2 / sqrt(n_features)`` (so the
        classes overlap and the unregularised optimum stays finite).
    problem : Problem
        The mean logistic loss above, with ``grad``, an exact ``hessp``
        (``X^T diag(p(1-p)) X v / N + l2 v``; for the logistic loss this is
        also the generalized Gauss–Newton product, given as ``gauss_newton``).
        ``x_star`` and ``f_star`` come from Newton's method at construction,
        run until the gradient's max-norm is below ``1e-12`` or rounding stops
        progress (the loss is strongly convex, so the minimizer is unique);
        ``residuals``/``jacobian``/``m`` are ``None``. The jitted functions
        are closures over ``X`` and ``y``: compiled per process, never cached.

    Examples
    --------
    >>> import numpy as np
    >>> from fastopt.testing import logistic_regression_data
    >>> X, y, p = logistic_regression_data(200, 5, seed=0)
    >>> X.shape, p.n
    ((200, 5), 5)
    >>> bool(np.abs(p.grad(p.x_star)).max() < 1e-10)
    True
    """
    n_samples = _check_int("n_samples", n_samples, 1)
    n_features = _check_int("n_features", n_features, 1)
    l2 = float(l2)
    if not (np.isfinite(l2) and l2 > 0.0):
        raise ValueError(f"Invalid l2 value: {l2} (must be finite and > 0)")
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features))
    w_true = rng.standard_normal(n_features) * (2.0 / np.sqrt(n_features))
    y = (rng.random(n_samples) < _sigmoid(X @ w_true)).astype(np.float64)
    fun, grad, hessp = _logistic_functions(X, y, l2)

    # Newton's method with backtracking on f. It stops on a tiny gradient or
    # when no step decreases f any more (rounding), whichever comes first.
    w = np.zeros(n_features)
    f = fun(w)
    for _ in range(100):
        g = grad(w)
        if np.abs(g).max() <= 1e-12:
            break
        p = _sigmoid(X @ w)
        H = (X.T * (p * (1.0 - p))) @ X / n_samples + l2 * np.eye(n_features)
        step = np.linalg.solve(H, g)
        t = 1.0
        w_new = w - step
        f_new = fun(w_new)
        while f_new > f and t > 1e-10:
            t *= 0.5
            w_new = w - t * step
            f_new = fun(w_new)
        if f_new > f:
            break
        w, f = w_new, f_new

    jit = numba.njit(**_CLOSURE_JIT)
    problem = Problem(
        name=f"logistic_{n_samples}x{n_features}_seed{seed}", n=n_features, m=None,
        x0=np.zeros(n_features), f_star=fun(w), x_star=w,
        fun=fun, grad=grad, fun_and_grad=lambda x: (fun(x), grad(x)),
        hessp=hessp, gauss_newton=hessp, residuals=None, jacobian=None,
        fun_jit=jit(fun), grad_jit=jit(grad), hessp_jit=jit(hessp),
        notes=f"Mean logistic loss + {l2:g}/2 |w|^2; x_star, f_star by Newton's method.",
    )  # fmt: skip
    return X, y, problem


# --------------------------------------------------------------------------
# Saddle for pictures: f = x^2 - y^2 + y^4 / 4
# --------------------------------------------------------------------------
def _saddle_fun(x):
    return x[0] ** 2 - x[1] ** 2 + 0.25 * x[1] ** 4


def _saddle_grad(x):
    g = np.empty(2)
    g[0] = 2.0 * x[0]
    g[1] = -2.0 * x[1] + x[1] ** 3
    return g


def _saddle_hessp(x, v):
    out = np.empty(2)
    out[0] = 2.0 * v[0]
    out[1] = (3.0 * x[1] ** 2 - 2.0) * v[1]
    return out


#: Problem 5 of Moré, Garbow & Hillstrom (1981), for two-dimensional pictures.
beale = MGH_PROBLEMS["beale"]

#: :math:`f(x, y) = x^2 - y^2 + y^4/4`: a saddle point at the origin (f = 0,
#: Hessian diag(2, -2)) between two global minima at :math:`(0, \pm\sqrt2)`,
#: f = -1. The quartic term only keeps f bounded below. The start (-1.5, 0.01)
#: runs down the x-axis into the saddle before the small y offset grows, which
#: is what a picture of escaping a saddle needs.
saddle = Problem(
    name="saddle", n=2, m=None, x0=np.array([-1.5, 0.01]),
    f_star=-1.0, x_star=np.array([0.0, np.sqrt(2.0)]),
    fun=_saddle_fun, grad=_saddle_grad,
    fun_and_grad=lambda x: (_saddle_fun(x), _saddle_grad(x)),
    hessp=_saddle_hessp, gauss_newton=None, residuals=None, jacobian=None,
    fun_jit=_jit(_saddle_fun), grad_jit=_jit(_saddle_grad), hessp_jit=_jit(_saddle_hessp),
    notes="f = x^2 - y^2 + y^4/4; saddle at (0, 0); minima (0, +-sqrt 2) with f = -1.",
)  # fmt: skip
