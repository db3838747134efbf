"""Moré–Garbow–Hillstrom least-squares test problems, written once for NumPy and numba.

Every problem is a sum of squares :math:`f(x) = \\sum_{i=1}^m r_i(x)^2` from
Moré, Garbow & Hillstrom (1981) [1]_, with its standard start, its residuals
``r(x)``, an analytic Jacobian ``J(x)`` and the analytic second-order term
:math:`\\sum_i w_i \\nabla^2 r_i(x) v`, from which

.. math::

    f = r^T r, \\qquad \\nabla f = 2 J^T r, \\qquad
    G v = 2 J^T (J v), \\qquad
    \\nabla^2 f\\, v = 2 J^T (J v) + 2 \\sum_i r_i \\nabla^2 r_i\\, v .

One source, two paths: each residual, Jacobian and second-order term is a
plain function of NumPy arrays and loops, registered with numba's
``register_jitable``. Called from Python it *is* that plain function (the
"Python callables" path of the solvers); called from jitted code numba compiles
it. The ``fun_jit``/``grad_jit``/``hessp_jit`` fields are ``numba.njit``
dispatchers (``cache=True``, :data:`fastopt._jit.KERNEL`) over the very same
module-level ``fun``/``grad``/``hessp`` functions, so the two paths cannot drift
apart. Nothing is compiled at import; each dispatcher compiles on its first
call and is cached in ``__pycache__`` afterwards. The dispatchers wrap
module-level functions rather than closures from a factory because numba
never finds a factory closure in its cache: each process would recompile.

Conventions: indices below are the paper's (1-based, ``x_1..x_n``); the code
is 0-based. Data tables are the paper's, with the digits it prints.

References
----------
.. [1] J. J. Moré, B. S. Garbow and K. E. Hillstrom, "Testing unconstrained
   optimization software", ACM Trans. Math. Softw. 7(1):17-41, 1981.
   https://doi.org/10.1145/355934.355936
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numba
import numpy as np
from numba.extending import register_jitable

from fastopt._jit import KERNEL

__all__ = ["MGH_PROBLEMS", "Problem", "get_problem", "problem_names"]

# Helpers are compiled into their (cached) callers with the same error model
# as every fastopt kernel: x/0 is inf as in NumPy, never a ZeroDivisionError,
# so a solver sees a non-finite value instead of an exception.
_jitable = register_jitable(error_model=KERNEL["error_model"])


def _jit(fn):
    """A lazily compiled, cached nopython dispatcher of the plain function ``fn``."""
    return numba.njit(**KERNEL)(fn)


def _frozen(a):
    """A read-only float64 copy, so a solver cannot overwrite a shared start."""
    if a is None:
        return None
    out = np.array(a, dtype=np.float64)
    out.flags.writeable = False
    return out


@dataclass(frozen=True, eq=False, repr=False)
class Problem:
    """A deterministic test problem with exact derivatives, in Python and numba form.

    Attributes
    ----------
    name : str
        Registry key, e.g. ``"bard"``.
    n : int
        Number of variables.
    m : int or None
        Number of residuals for a least-squares problem, ``None`` otherwise.
    x0 : ndarray, shape (n,)
        Standard start (read-only; copy it before updating in place).
    f_star : float
        Known global minimum value (``nan`` where the source gives none for
        this ``n``). The paper prints six digits, truncated rather than
        rounded (Bard: 8.21487...e-3 for 8.2148773e-3), so the exact value can
        lie up to one unit of the sixth digit above ``f_star``.
    x_star : ndarray or None
        A known minimizer where the source gives one (read-only).
    fun, grad, fun_and_grad : callable
        ``fun(x) -> float``, ``grad(x) -> ndarray``,
        ``fun_and_grad(x) -> (float, ndarray)``; plain Python.
    hessp : callable
        ``hessp(x, v) -> ndarray``, the Hessian-vector product.
    gauss_newton : callable or None
        ``gauss_newton(x, v) -> ndarray``: ``2 J^T (J v)`` for least squares;
        for other convex models the generalized Gauss–Newton product; ``None``
        where there is none.
    residuals, jacobian : callable or None
        ``residuals(x) -> (m,)`` and ``jacobian(x) -> (m, n)``; ``None`` when
        the objective is not a sum of squares.
    fun_jit, grad_jit, hessp_jit : numba.core.registry.CPUDispatcher
        ``@njit`` versions of ``fun``, ``grad``, ``hessp`` compiled from the
        same source, for fastopt's compiled drivers. They compile on first call.
    local_minima : tuple of float
        Values of other minima that local solvers often reach from ``x0``: the
        paper's (including its minima "at infinity", where f tends to the
        value as some variables diverge), and a few computed here, which
        ``notes`` marks as such.
    hessp_exact : bool
        True when ``hessp`` is analytic; False when it is a finite difference
        of the analytic gradient.
    notes : str
        Anything a user of the problem should know (formula, quirks, source).
    """

    name: str
    n: int
    m: int | None
    x0: np.ndarray
    f_star: float
    x_star: np.ndarray | None
    fun: Callable[[np.ndarray], float]
    grad: Callable[[np.ndarray], np.ndarray]
    fun_and_grad: Callable[[np.ndarray], tuple[float, np.ndarray]]
    hessp: Callable[[np.ndarray, np.ndarray], np.ndarray]
    gauss_newton: Callable[[np.ndarray, np.ndarray], np.ndarray] | None
    residuals: Callable[[np.ndarray], np.ndarray] | None
    jacobian: Callable[[np.ndarray], np.ndarray] | None
    fun_jit: Any
    grad_jit: Any
    hessp_jit: Any
    local_minima: tuple[float, ...] = ()
    hessp_exact: bool = True
    notes: str = field(default="")

    def __post_init__(self):
        x0 = _frozen(self.x0)
        if x0.shape != (self.n,):
            raise ValueError(f"x0 has shape {x0.shape}, expected ({self.n},)")
        object.__setattr__(self, "x0", x0)
        object.__setattr__(self, "x_star", _frozen(self.x_star))
        object.__setattr__(self, "f_star", float(self.f_star))
        object.__setattr__(self, "local_minima", tuple(float(v) for v in self.local_minima))

    def __repr__(self):
        return f"Problem(name={self.name!r}, n={self.n}, m={self.m}, f_star={self.f_star:.6g})"


# --------------------------------------------------------------------------
# Generic least-squares algebra, shared by every problem.
# --------------------------------------------------------------------------
@_jitable
def _ls_fun(r):
    return np.dot(r, r)


@_jitable
def _ls_grad(r, J):
    return 2.0 * np.dot(J.T, r)


@_jitable
def _ls_gn(J, v):
    return 2.0 * np.dot(J.T, np.dot(J, v))


@_jitable
def _ls_hessp(r, J, v, s):
    # s = sum_i r_i Hess(r_i) v, the part Gauss-Newton drops
    return 2.0 * np.dot(J.T, np.dot(J, v)) + 2.0 * s


# --------------------------------------------------------------------------
# Each problem: _<p>_res(x), _<p>_jac(x), _<p>_rhv(x, w, v) = sum_i w_i Hess(r_i) v,
# then the three module-level wrappers that the dispatchers compile.
# --------------------------------------------------------------------------


# (1) Rosenbrock and (21) extended Rosenbrock, n even:
# r_{2i-1} = 10 (x_{2i} - x_{2i-1}^2),  r_{2i} = 1 - x_{2i-1}
@_jitable
def _xrosen_res(x):
    r = np.empty(x.size)
    r[0::2] = 10.0 * (x[1::2] - x[0::2] ** 2)
    r[1::2] = 1.0 - x[0::2]
    return r


@_jitable
def _xrosen_jac(x):
    n = x.size
    J = np.zeros((n, n))
    for k in range(0, n, 2):
        J[k, k] = -20.0 * x[k]
        J[k, k + 1] = 10.0
        J[k + 1, k] = -1.0
    return J


@_jitable
def _xrosen_rhv(x, w, v):
    out = np.zeros(x.size)
    out[0::2] = -20.0 * w[0::2] * v[0::2]
    return out


def _xrosen_fun(x):
    return _ls_fun(_xrosen_res(x))


def _xrosen_grad(x):
    return _ls_grad(_xrosen_res(x), _xrosen_jac(x))


def _xrosen_hessp(x, v):
    r = _xrosen_res(x)
    return _ls_hessp(r, _xrosen_jac(x), v, _xrosen_rhv(x, r, v))


# (2) Freudenstein and Roth:
# r_1 = -13 + x_1 + ((5 - x_2) x_2 - 2) x_2,  r_2 = -29 + x_1 + ((x_2 + 1) x_2 - 14) x_2
@_jitable
def _froth_res(x):
    r = np.empty(2)
    r[0] = -13.0 + x[0] + ((5.0 - x[1]) * x[1] - 2.0) * x[1]
    r[1] = -29.0 + x[0] + ((x[1] + 1.0) * x[1] - 14.0) * x[1]
    return r


@_jitable
def _froth_jac(x):
    J = np.empty((2, 2))
    J[0, 0] = 1.0
    J[0, 1] = (10.0 - 3.0 * x[1]) * x[1] - 2.0
    J[1, 0] = 1.0
    J[1, 1] = (3.0 * x[1] + 2.0) * x[1] - 14.0
    return J


@_jitable
def _froth_rhv(x, w, v):
    out = np.zeros(2)
    out[1] = (w[0] * (10.0 - 6.0 * x[1]) + w[1] * (6.0 * x[1] + 2.0)) * v[1]
    return out


def _froth_fun(x):
    return _ls_fun(_froth_res(x))


def _froth_grad(x):
    return _ls_grad(_froth_res(x), _froth_jac(x))


def _froth_hessp(x, v):
    r = _froth_res(x)
    return _ls_hessp(r, _froth_jac(x), v, _froth_rhv(x, r, v))


# (3) Powell badly scaled: r_1 = 1e4 x_1 x_2 - 1,  r_2 = exp(-x_1) + exp(-x_2) - 1.0001
@_jitable
def _pbs_res(x):
    r = np.empty(2)
    r[0] = 1.0e4 * x[0] * x[1] - 1.0
    r[1] = np.exp(-x[0]) + np.exp(-x[1]) - 1.0001
    return r


@_jitable
def _pbs_jac(x):
    J = np.empty((2, 2))
    J[0, 0] = 1.0e4 * x[1]
    J[0, 1] = 1.0e4 * x[0]
    J[1, 0] = -np.exp(-x[0])
    J[1, 1] = -np.exp(-x[1])
    return J


@_jitable
def _pbs_rhv(x, w, v):
    out = np.empty(2)
    out[0] = w[0] * 1.0e4 * v[1] + w[1] * np.exp(-x[0]) * v[0]
    out[1] = w[0] * 1.0e4 * v[0] + w[1] * np.exp(-x[1]) * v[1]
    return out


def _pbs_fun(x):
    return _ls_fun(_pbs_res(x))


def _pbs_grad(x):
    return _ls_grad(_pbs_res(x), _pbs_jac(x))


def _pbs_hessp(x, v):
    r = _pbs_res(x)
    return _ls_hessp(r, _pbs_jac(x), v, _pbs_rhv(x, r, v))


# (4) Brown badly scaled: r_1 = x_1 - 1e6,  r_2 = x_2 - 2e-6,  r_3 = x_1 x_2 - 2
@_jitable
def _bbs_res(x):
    r = np.empty(3)
    r[0] = x[0] - 1.0e6
    r[1] = x[1] - 2.0e-6
    r[2] = x[0] * x[1] - 2.0
    return r


@_jitable
def _bbs_jac(x):
    J = np.zeros((3, 2))
    J[0, 0] = 1.0
    J[1, 1] = 1.0
    J[2, 0] = x[1]
    J[2, 1] = x[0]
    return J


@_jitable
def _bbs_rhv(x, w, v):
    out = np.empty(2)
    out[0] = w[2] * v[1]
    out[1] = w[2] * v[0]
    return out


def _bbs_fun(x):
    return _ls_fun(_bbs_res(x))


def _bbs_grad(x):
    return _ls_grad(_bbs_res(x), _bbs_jac(x))


def _bbs_hessp(x, v):
    r = _bbs_res(x)
    return _ls_hessp(r, _bbs_jac(x), v, _bbs_rhv(x, r, v))


# (5) Beale: r_i = y_i - x_1 (1 - x_2^i), i = 1..3
_BEALE_Y = np.array([1.5, 2.25, 2.625])


@_jitable
def _beale_res(x):
    r = np.empty(3)
    for i in range(3):
        r[i] = _BEALE_Y[i] - x[0] * (1.0 - x[1] ** (i + 1))
    return r


@_jitable
def _beale_jac(x):
    J = np.empty((3, 2))
    for i in range(3):
        J[i, 0] = x[1] ** (i + 1) - 1.0
        J[i, 1] = (i + 1) * x[0] * x[1] ** i
    return J


@_jitable
def _beale_rhv(x, w, v):
    # d2 r_i / dx1 dx2 = i x2^(i-1), d2 r_i / dx2^2 = i (i-1) x1 x2^(i-2); written
    # per i so that x2 = 0 never meets a negative power.
    h12 = w[0] + w[1] * 2.0 * x[1] + w[2] * 3.0 * x[1] ** 2
    h22 = w[1] * 2.0 * x[0] + w[2] * 6.0 * x[0] * x[1]
    out = np.empty(2)
    out[0] = h12 * v[1]
    out[1] = h12 * v[0] + h22 * v[1]
    return out


def _beale_fun(x):
    return _ls_fun(_beale_res(x))


def _beale_grad(x):
    return _ls_grad(_beale_res(x), _beale_jac(x))


def _beale_hessp(x, v):
    r = _beale_res(x)
    return _ls_hessp(r, _beale_jac(x), v, _beale_rhv(x, r, v))


# (6) Jennrich and Sampson, m = 10: r_i = 2 + 2i - (exp(i x_1) + exp(i x_2))
_JS_I = np.arange(1.0, 11.0)


@_jitable
def _js_res(x):
    return 2.0 + 2.0 * _JS_I - (np.exp(_JS_I * x[0]) + np.exp(_JS_I * x[1]))


@_jitable
def _js_jac(x):
    J = np.empty((10, 2))
    J[:, 0] = -_JS_I * np.exp(_JS_I * x[0])
    J[:, 1] = -_JS_I * np.exp(_JS_I * x[1])
    return J


@_jitable
def _js_rhv(x, w, v):
    out = np.empty(2)
    out[0] = -np.sum(w * _JS_I**2 * np.exp(_JS_I * x[0])) * v[0]
    out[1] = -np.sum(w * _JS_I**2 * np.exp(_JS_I * x[1])) * v[1]
    return out


def _js_fun(x):
    return _ls_fun(_js_res(x))


def _js_grad(x):
    return _ls_grad(_js_res(x), _js_jac(x))


def _js_hessp(x, v):
    r = _js_res(x)
    return _ls_hessp(r, _js_jac(x), v, _js_rhv(x, r, v))


# (7) Helical valley: r_1 = 10 (x_3 - 10 theta), r_2 = 10 (sqrt(x_1^2 + x_2^2) - 1), r_3 = x_3,
# theta = atan(x_2/x_1)/(2 pi), + 1/2 when x_1 < 0. The paper leaves x_1 = 0 open; as in
# MINPACK's test driver, theta = 0.25 sign(x_2) there (the limit from x_1 > 0).
_TWO_PI = 2.0 * np.pi


@_jitable
def _helical_theta(x1, x2):
    if x1 > 0.0:
        return np.arctan(x2 / x1) / _TWO_PI
    if x1 < 0.0:
        return np.arctan(x2 / x1) / _TWO_PI + 0.5
    return 0.25 if x2 >= 0.0 else -0.25


@_jitable
def _helical_res(x):
    r = np.empty(3)
    r[0] = 10.0 * (x[2] - 10.0 * _helical_theta(x[0], x[1]))
    r[1] = 10.0 * (np.sqrt(x[0] ** 2 + x[1] ** 2) - 1.0)
    r[2] = x[2]
    return r


@_jitable
def _helical_jac(x):
    rho2 = x[0] ** 2 + x[1] ** 2
    rho = np.sqrt(rho2)
    J = np.zeros((3, 3))
    # d theta/dx_1 = -x_2 / (2 pi rho^2),  d theta/dx_2 = x_1 / (2 pi rho^2), on both branches
    J[0, 0] = 100.0 * x[1] / (_TWO_PI * rho2)
    J[0, 1] = -100.0 * x[0] / (_TWO_PI * rho2)
    J[0, 2] = 10.0
    J[1, 0] = 10.0 * x[0] / rho
    J[1, 1] = 10.0 * x[1] / rho
    J[2, 2] = 1.0
    return J


@_jitable
def _helical_rhv(x, w, v):
    x1 = x[0]
    x2 = x[1]
    rho2 = x1**2 + x2**2
    rho = np.sqrt(rho2)
    # Hessian of theta: [[2 x1 x2, x2^2 - x1^2], [x2^2 - x1^2, -2 x1 x2]] / (2 pi rho^4)
    c = 1.0 / (_TWO_PI * rho2 * rho2)
    t11 = 2.0 * x1 * x2 * c
    t12 = (x2 * x2 - x1 * x1) * c
    # Hessian of rho: [[x2^2, -x1 x2], [-x1 x2, x1^2]] / rho^3
    d = 1.0 / (rho2 * rho)
    p11 = x2 * x2 * d
    p12 = -x1 * x2 * d
    p22 = x1 * x1 * d
    # r_1 = 10 x3 - 100 theta (Hessian -100 H_theta); r_2 = 10 rho - 10 (Hessian 10 H_rho)
    a11 = -100.0 * w[0] * t11 + 10.0 * w[1] * p11
    a12 = -100.0 * w[0] * t12 + 10.0 * w[1] * p12
    a22 = 100.0 * w[0] * t11 + 10.0 * w[1] * p22
    out = np.zeros(3)
    out[0] = a11 * v[0] + a12 * v[1]
    out[1] = a12 * v[0] + a22 * v[1]
    return out


def _helical_fun(x):
    return _ls_fun(_helical_res(x))


def _helical_grad(x):
    return _ls_grad(_helical_res(x), _helical_jac(x))


def _helical_hessp(x, v):
    r = _helical_res(x)
    return _ls_hessp(r, _helical_jac(x), v, _helical_rhv(x, r, v))


# (8) Bard, m = 15: r_i = y_i - (x_1 + u_i / (v_i x_2 + w_i x_3)),
# u_i = i, v_i = 16 - i, w_i = min(u_i, v_i)
_BARD_Y = np.array(
    [0.14, 0.18, 0.22, 0.25, 0.29, 0.32, 0.35, 0.39, 0.37, 0.58, 0.73, 0.96, 1.34, 2.10, 4.39]
)
_BARD_U = np.arange(1.0, 16.0)
_BARD_V = 16.0 - _BARD_U
_BARD_W = np.minimum(_BARD_U, _BARD_V)


@_jitable
def _bard_res(x):
    d = _BARD_V * x[1] + _BARD_W * x[2]
    return _BARD_Y - (x[0] + _BARD_U / d)


@_jitable
def _bard_jac(x):
    d = _BARD_V * x[1] + _BARD_W * x[2]
    q = _BARD_U / (d * d)
    J = np.empty((15, 3))
    J[:, 0] = -1.0
    J[:, 1] = q * _BARD_V
    J[:, 2] = q * _BARD_W
    return J


@_jitable
def _bard_rhv(x, w, v):
    # Hess r_i = -2 u_i / d_i^3 c_i c_i^T with c_i = (0, v_i, w_i)
    d = _BARD_V * x[1] + _BARD_W * x[2]
    s = w * (-2.0 * _BARD_U / d**3) * (_BARD_V * v[1] + _BARD_W * v[2])
    out = np.zeros(3)
    out[1] = np.sum(s * _BARD_V)
    out[2] = np.sum(s * _BARD_W)
    return out


def _bard_fun(x):
    return _ls_fun(_bard_res(x))


def _bard_grad(x):
    return _ls_grad(_bard_res(x), _bard_jac(x))


def _bard_hessp(x, v):
    r = _bard_res(x)
    return _ls_hessp(r, _bard_jac(x), v, _bard_rhv(x, r, v))


# (9) Gaussian, m = 15: r_i = x_1 exp(-x_2 (t_i - x_3)^2 / 2) - y_i, t_i = (8 - i)/2
_GAUSS_T = (8.0 - np.arange(1.0, 16.0)) / 2.0
_GAUSS_Y = np.array(
    [
        0.0009, 0.0044, 0.0175, 0.0540, 0.1295, 0.2420, 0.3521, 0.3989,
        0.3521, 0.2420, 0.1295, 0.0540, 0.0175, 0.0044, 0.0009,
    ]
)  # fmt: skip


@_jitable
def _gauss_res(x):
    d = _GAUSS_T - x[2]
    return x[0] * np.exp(-0.5 * x[1] * d * d) - _GAUSS_Y


@_jitable
def _gauss_jac(x):
    d = _GAUSS_T - x[2]
    s = d * d
    e = np.exp(-0.5 * x[1] * s)
    J = np.empty((15, 3))
    J[:, 0] = e
    J[:, 1] = -0.5 * x[0] * s * e
    J[:, 2] = x[0] * x[1] * d * e
    return J


@_jitable
def _gauss_rhv(x, w, v):
    d = _GAUSS_T - x[2]
    s = d * d
    e = np.exp(-0.5 * x[1] * s)
    h01 = -0.5 * s * e
    h02 = x[1] * d * e
    h11 = 0.25 * x[0] * s * s * e
    h12 = x[0] * d * e * (1.0 - 0.5 * x[1] * s)
    h22 = x[0] * x[1] * e * (x[1] * s - 1.0)
    out = np.empty(3)
    out[0] = np.sum(w * (h01 * v[1] + h02 * v[2]))
    out[1] = np.sum(w * (h01 * v[0] + h11 * v[1] + h12 * v[2]))
    out[2] = np.sum(w * (h02 * v[0] + h12 * v[1] + h22 * v[2]))
    return out


def _gauss_fun(x):
    return _ls_fun(_gauss_res(x))


def _gauss_grad(x):
    return _ls_grad(_gauss_res(x), _gauss_jac(x))


def _gauss_hessp(x, v):
    r = _gauss_res(x)
    return _ls_hessp(r, _gauss_jac(x), v, _gauss_rhv(x, r, v))


# (10) Meyer, m = 16: r_i = x_1 exp(x_2 / (t_i + x_3)) - y_i, t_i = 45 + 5 i
_MEYER_T = 45.0 + 5.0 * np.arange(1.0, 17.0)
_MEYER_Y = np.array(
    [
        34780.0, 28610.0, 23650.0, 19630.0, 16370.0, 13720.0, 11540.0, 9744.0,
        8261.0, 7030.0, 6005.0, 5147.0, 4427.0, 3820.0, 3307.0, 2872.0,
    ]
)  # fmt: skip


@_jitable
def _meyer_res(x):
    return x[0] * np.exp(x[1] / (_MEYER_T + x[2])) - _MEYER_Y


@_jitable
def _meyer_jac(x):
    q = _MEYER_T + x[2]
    e = np.exp(x[1] / q)
    J = np.empty((16, 3))
    J[:, 0] = e
    J[:, 1] = x[0] * e / q
    J[:, 2] = -x[0] * x[1] * e / (q * q)
    return J


@_jitable
def _meyer_rhv(x, w, v):
    q = _MEYER_T + x[2]
    e = np.exp(x[1] / q)
    h01 = e / q
    h02 = -x[1] * e / q**2
    h11 = x[0] * e / q**2
    h12 = -x[0] * e * (x[1] + q) / q**3
    h22 = x[0] * x[1] * e * (x[1] + 2.0 * q) / q**4
    out = np.empty(3)
    out[0] = np.sum(w * (h01 * v[1] + h02 * v[2]))
    out[1] = np.sum(w * (h01 * v[0] + h11 * v[1] + h12 * v[2]))
    out[2] = np.sum(w * (h02 * v[0] + h12 * v[1] + h22 * v[2]))
    return out


def _meyer_fun(x):
    return _ls_fun(_meyer_res(x))


def _meyer_grad(x):
    return _ls_grad(_meyer_res(x), _meyer_jac(x))


def _meyer_hessp(x, v):
    r = _meyer_res(x)
    return _ls_hessp(r, _meyer_jac(x), v, _meyer_rhv(x, r, v))


# (12) Box three-dimensional, m = 10:
# r_i = exp(-t_i x_1) - exp(-t_i x_2) - x_3 (exp(-t_i) - exp(-10 t_i)), t_i = 0.1 i
_BOX_T = 0.1 * np.arange(1.0, 11.0)
_BOX_C = np.exp(-_BOX_T) - np.exp(-10.0 * _BOX_T)


@_jitable
def _box_res(x):
    return np.exp(-_BOX_T * x[0]) - np.exp(-_BOX_T * x[1]) - x[2] * _BOX_C


@_jitable
def _box_jac(x):
    J = np.empty((10, 3))
    J[:, 0] = -_BOX_T * np.exp(-_BOX_T * x[0])
    J[:, 1] = _BOX_T * np.exp(-_BOX_T * x[1])
    J[:, 2] = -_BOX_C
    return J


@_jitable
def _box_rhv(x, w, v):
    out = np.zeros(3)
    out[0] = np.sum(w * _BOX_T**2 * np.exp(-_BOX_T * x[0])) * v[0]
    out[1] = -np.sum(w * _BOX_T**2 * np.exp(-_BOX_T * x[1])) * v[1]
    return out


def _box_fun(x):
    return _ls_fun(_box_res(x))


def _box_grad(x):
    return _ls_grad(_box_res(x), _box_jac(x))


def _box_hessp(x, v):
    r = _box_res(x)
    return _ls_hessp(r, _box_jac(x), v, _box_rhv(x, r, v))


# (13) Powell singular and (22) extended Powell singular, n a multiple of 4:
# r_{4i-3} = x_{4i-3} + 10 x_{4i-2},          r_{4i-2} = sqrt(5) (x_{4i-1} - x_{4i}),
# r_{4i-1} = (x_{4i-2} - 2 x_{4i-1})^2,       r_{4i}   = sqrt(10) (x_{4i-3} - x_{4i})^2
_SQRT5 = np.sqrt(5.0)
_SQRT10 = np.sqrt(10.0)


@_jitable
def _xpowell_res(x):
    a = x[0::4]
    b = x[1::4]
    c = x[2::4]
    d = x[3::4]
    r = np.empty(x.size)
    r[0::4] = a + 10.0 * b
    r[1::4] = _SQRT5 * (c - d)
    r[2::4] = (b - 2.0 * c) ** 2
    r[3::4] = _SQRT10 * (a - d) ** 2
    return r


@_jitable
def _xpowell_jac(x):
    n = x.size
    J = np.zeros((n, n))
    for k in range(0, n, 4):
        bc = 2.0 * (x[k + 1] - 2.0 * x[k + 2])
        ad = 2.0 * _SQRT10 * (x[k] - x[k + 3])
        J[k, k] = 1.0
        J[k, k + 1] = 10.0
        J[k + 1, k + 2] = _SQRT5
        J[k + 1, k + 3] = -_SQRT5
        J[k + 2, k + 1] = bc
        J[k + 2, k + 2] = -2.0 * bc
        J[k + 3, k] = ad
        J[k + 3, k + 3] = -ad
    return J


@_jitable
def _xpowell_rhv(x, w, v):
    # Hess r_{4i-1} = 2 c c^T, c = (0, 1, -2, 0); Hess r_{4i} = 2 sqrt(10) d d^T, d = (1, 0, 0, -1)
    s3 = 2.0 * w[2::4] * (v[1::4] - 2.0 * v[2::4])
    s4 = 2.0 * _SQRT10 * w[3::4] * (v[0::4] - v[3::4])
    out = np.empty(x.size)
    out[0::4] = s4
    out[1::4] = s3
    out[2::4] = -2.0 * s3
    out[3::4] = -s4
    return out


def _xpowell_fun(x):
    return _ls_fun(_xpowell_res(x))


def _xpowell_grad(x):
    return _ls_grad(_xpowell_res(x), _xpowell_jac(x))


def _xpowell_hessp(x, v):
    r = _xpowell_res(x)
    return _ls_hessp(r, _xpowell_jac(x), v, _xpowell_rhv(x, r, v))


# (14) Wood: r_1 = 10 (x_2 - x_1^2), r_2 = 1 - x_1, r_3 = sqrt(90) (x_4 - x_3^2),
# r_4 = 1 - x_3, r_5 = sqrt(10) (x_2 + x_4 - 2), r_6 = (x_2 - x_4) / sqrt(10)
_SQRT90 = np.sqrt(90.0)


@_jitable
def _wood_res(x):
    r = np.empty(6)
    r[0] = 10.0 * (x[1] - x[0] ** 2)
    r[1] = 1.0 - x[0]
    r[2] = _SQRT90 * (x[3] - x[2] ** 2)
    r[3] = 1.0 - x[2]
    r[4] = _SQRT10 * (x[1] + x[3] - 2.0)
    r[5] = (x[1] - x[3]) / _SQRT10
    return r


@_jitable
def _wood_jac(x):
    J = np.zeros((6, 4))
    J[0, 0] = -20.0 * x[0]
    J[0, 1] = 10.0
    J[1, 0] = -1.0
    J[2, 2] = -2.0 * _SQRT90 * x[2]
    J[2, 3] = _SQRT90
    J[3, 2] = -1.0
    J[4, 1] = _SQRT10
    J[4, 3] = _SQRT10
    J[5, 1] = 1.0 / _SQRT10
    J[5, 3] = -1.0 / _SQRT10
    return J


@_jitable
def _wood_rhv(x, w, v):
    out = np.zeros(4)
    out[0] = -20.0 * w[0] * v[0]
    out[2] = -2.0 * _SQRT90 * w[2] * v[2]
    return out


def _wood_fun(x):
    return _ls_fun(_wood_res(x))


def _wood_grad(x):
    return _ls_grad(_wood_res(x), _wood_jac(x))


def _wood_hessp(x, v):
    r = _wood_res(x)
    return _ls_hessp(r, _wood_jac(x), v, _wood_rhv(x, r, v))


# (15) Kowalik and Osborne, m = 11: r_i = y_i - x_1 (u_i^2 + u_i x_2) / (u_i^2 + u_i x_3 + x_4)
_KO_Y = np.array(
    [0.1957, 0.1947, 0.1735, 0.1600, 0.0844, 0.0627, 0.0456, 0.0342, 0.0323, 0.0235, 0.0246]
)
# the paper's rounded u (0.1670, 0.0833, 0.0714), not 1/6, 1/12, 1/14
_KO_U = np.array(
    [4.0000, 2.0000, 1.0000, 0.5000, 0.2500, 0.1670, 0.1250, 0.1000, 0.0833, 0.0714, 0.0625]
)


@_jitable
def _ko_res(x):
    num = _KO_U * (_KO_U + x[1])
    den = _KO_U * (_KO_U + x[2]) + x[3]
    return _KO_Y - x[0] * num / den


@_jitable
def _ko_jac(x):
    num = _KO_U * (_KO_U + x[1])
    den = _KO_U * (_KO_U + x[2]) + x[3]
    J = np.empty((11, 4))
    J[:, 0] = -num / den
    J[:, 1] = -x[0] * _KO_U / den
    J[:, 2] = x[0] * num * _KO_U / den**2
    J[:, 3] = x[0] * num / den**2
    return J


@_jitable
def _ko_rhv(x, w, v):
    u = _KO_U
    num = u * (u + x[1])
    den = u * (u + x[2]) + x[3]
    h01 = -u / den
    h02 = num * u / den**2
    h03 = num / den**2
    h12 = x[0] * u * u / den**2
    h13 = x[0] * u / den**2
    h22 = -2.0 * x[0] * num * u * u / den**3
    h23 = -2.0 * x[0] * num * u / den**3
    h33 = -2.0 * x[0] * num / den**3
    out = np.empty(4)
    out[0] = np.sum(w * (h01 * v[1] + h02 * v[2] + h03 * v[3]))
    out[1] = np.sum(w * (h01 * v[0] + h12 * v[2] + h13 * v[3]))
    out[2] = np.sum(w * (h02 * v[0] + h12 * v[1] + h22 * v[2] + h23 * v[3]))
    out[3] = np.sum(w * (h03 * v[0] + h13 * v[1] + h23 * v[2] + h33 * v[3]))
    return out


def _ko_fun(x):
    return _ls_fun(_ko_res(x))


def _ko_grad(x):
    return _ls_grad(_ko_res(x), _ko_jac(x))


def _ko_hessp(x, v):
    r = _ko_res(x)
    return _ls_hessp(r, _ko_jac(x), v, _ko_rhv(x, r, v))


# (16) Brown and Dennis, m = 20:
# r_i = (x_1 + t_i x_2 - exp(t_i))^2 + (x_3 + x_4 sin(t_i) - cos(t_i))^2, t_i = i/5
_BD_T = np.arange(1.0, 21.0) / 5.0
_BD_S = np.sin(_BD_T)


@_jitable
def _bd_res(x):
    a = x[0] + _BD_T * x[1] - np.exp(_BD_T)
    b = x[2] + x[3] * _BD_S - np.cos(_BD_T)
    return a * a + b * b


@_jitable
def _bd_jac(x):
    a = x[0] + _BD_T * x[1] - np.exp(_BD_T)
    b = x[2] + x[3] * _BD_S - np.cos(_BD_T)
    J = np.empty((20, 4))
    J[:, 0] = 2.0 * a
    J[:, 1] = 2.0 * a * _BD_T
    J[:, 2] = 2.0 * b
    J[:, 3] = 2.0 * b * _BD_S
    return J


@_jitable
def _bd_rhv(x, w, v):
    # Hess r_i = 2 p p^T + 2 q q^T with p = (1, t_i, 0, 0), q = (0, 0, 1, sin t_i)
    pv = 2.0 * w * (v[0] + _BD_T * v[1])
    qv = 2.0 * w * (v[2] + _BD_S * v[3])
    out = np.empty(4)
    out[0] = np.sum(pv)
    out[1] = np.sum(pv * _BD_T)
    out[2] = np.sum(qv)
    out[3] = np.sum(qv * _BD_S)
    return out


def _bd_fun(x):
    return _ls_fun(_bd_res(x))


def _bd_grad(x):
    return _ls_grad(_bd_res(x), _bd_jac(x))


def _bd_hessp(x, v):
    r = _bd_res(x)
    return _ls_hessp(r, _bd_jac(x), v, _bd_rhv(x, r, v))


# (17) Osborne 1, m = 33: r_i = y_i - (x_1 + x_2 exp(-t_i x_4) + x_3 exp(-t_i x_5)), t_i = 10 (i-1)
_OSB1_T = 10.0 * np.arange(33.0)
_OSB1_Y = np.array(
    [
        0.844, 0.908, 0.932, 0.936, 0.925, 0.908, 0.881, 0.850, 0.818, 0.784, 0.751,
        0.718, 0.685, 0.658, 0.628, 0.603, 0.580, 0.558, 0.538, 0.522, 0.506, 0.490,
        0.478, 0.467, 0.457, 0.448, 0.438, 0.431, 0.424, 0.420, 0.414, 0.411, 0.406,
    ]
)  # fmt: skip


@_jitable
def _osb1_res(x):
    return _OSB1_Y - (x[0] + x[1] * np.exp(-_OSB1_T * x[3]) + x[2] * np.exp(-_OSB1_T * x[4]))


@_jitable
def _osb1_jac(x):
    e4 = np.exp(-_OSB1_T * x[3])
    e5 = np.exp(-_OSB1_T * x[4])
    J = np.empty((33, 5))
    J[:, 0] = -1.0
    J[:, 1] = -e4
    J[:, 2] = -e5
    J[:, 3] = _OSB1_T * x[1] * e4
    J[:, 4] = _OSB1_T * x[2] * e5
    return J


@_jitable
def _osb1_rhv(x, w, v):
    t = _OSB1_T
    e4 = np.exp(-t * x[3])
    e5 = np.exp(-t * x[4])
    h13 = t * e4
    h33 = -x[1] * t * t * e4
    h24 = t * e5
    h44 = -x[2] * t * t * e5
    out = np.zeros(5)
    out[1] = np.sum(w * h13) * v[3]
    out[2] = np.sum(w * h24) * v[4]
    out[3] = np.sum(w * (h13 * v[1] + h33 * v[3]))
    out[4] = np.sum(w * (h24 * v[2] + h44 * v[4]))
    return out


def _osb1_fun(x):
    return _ls_fun(_osb1_res(x))


def _osb1_grad(x):
    return _ls_grad(_osb1_res(x), _osb1_jac(x))


def _osb1_hessp(x, v):
    r = _osb1_res(x)
    return _ls_hessp(r, _osb1_jac(x), v, _osb1_rhv(x, r, v))


# (18) Biggs EXP6, m = 13: r_i = x_3 e^{-t_i x_1} - x_4 e^{-t_i x_2} + x_6 e^{-t_i x_5} - y_i,
# t_i = 0.1 i, y_i = e^{-t_i} - 5 e^{-10 t_i} + 3 e^{-4 t_i}
_BIGGS_T = 0.1 * np.arange(1.0, 14.0)
_BIGGS_Y = np.exp(-_BIGGS_T) - 5.0 * np.exp(-10.0 * _BIGGS_T) + 3.0 * np.exp(-4.0 * _BIGGS_T)


@_jitable
def _biggs_res(x):
    t = _BIGGS_T
    return x[2] * np.exp(-t * x[0]) - x[3] * np.exp(-t * x[1]) + x[5] * np.exp(-t * x[4]) - _BIGGS_Y


@_jitable
def _biggs_jac(x):
    t = _BIGGS_T
    e0 = np.exp(-t * x[0])
    e1 = np.exp(-t * x[1])
    e4 = np.exp(-t * x[4])
    J = np.empty((13, 6))
    J[:, 0] = -t * x[2] * e0
    J[:, 1] = t * x[3] * e1
    J[:, 2] = e0
    J[:, 3] = -e1
    J[:, 4] = -t * x[5] * e4
    J[:, 5] = e4
    return J


@_jitable
def _biggs_rhv(x, w, v):
    t = _BIGGS_T
    e0 = np.exp(-t * x[0])
    e1 = np.exp(-t * x[1])
    e4 = np.exp(-t * x[4])
    h00 = t * t * x[2] * e0
    h02 = -t * e0
    h11 = -t * t * x[3] * e1
    h13 = t * e1
    h44 = t * t * x[5] * e4
    h45 = -t * e4
    out = np.empty(6)
    out[0] = np.sum(w * (h00 * v[0] + h02 * v[2]))
    out[1] = np.sum(w * (h11 * v[1] + h13 * v[3]))
    out[2] = np.sum(w * h02) * v[0]
    out[3] = np.sum(w * h13) * v[1]
    out[4] = np.sum(w * (h44 * v[4] + h45 * v[5]))
    out[5] = np.sum(w * h45) * v[4]
    return out


def _biggs_fun(x):
    return _ls_fun(_biggs_res(x))


def _biggs_grad(x):
    return _ls_grad(_biggs_res(x), _biggs_jac(x))


def _biggs_hessp(x, v):
    r = _biggs_res(x)
    return _ls_hessp(r, _biggs_jac(x), v, _biggs_rhv(x, r, v))


# (19) Osborne 2, m = 65: r_i = y_i - (x_1 e^{-t_i x_5} + x_2 e^{-(t_i - x_9)^2 x_6}
#                         + x_3 e^{-(t_i - x_10)^2 x_7} + x_4 e^{-(t_i - x_11)^2 x_8}),
# t_i = (i - 1)/10. Gaussian bump k (k = 0, 1, 2) has amplitude x[1+k], rate x[5+k],
# centre x[8+k] (0-based).
_OSB2_T = np.arange(65.0) / 10.0
_OSB2_Y = np.array(
    [
        1.366, 1.191, 1.112, 1.013, 0.991, 0.885, 0.831, 0.847, 0.786, 0.725,
        0.746, 0.679, 0.608, 0.655, 0.616, 0.606, 0.602, 0.626, 0.651, 0.724,
        0.649, 0.649, 0.694, 0.644, 0.624, 0.661, 0.612, 0.558, 0.533, 0.495,
        0.500, 0.423, 0.395, 0.375, 0.372, 0.391, 0.396, 0.405, 0.428, 0.429,
        0.523, 0.562, 0.607, 0.653, 0.672, 0.708, 0.633, 0.668, 0.645, 0.632,
        0.591, 0.559, 0.597, 0.625, 0.739, 0.710, 0.729, 0.720, 0.636, 0.581,
        0.428, 0.292, 0.162, 0.098, 0.054,
    ]
)  # fmt: skip


@_jitable
def _osb2_res(x):
    t = _OSB2_T
    model = x[0] * np.exp(-t * x[4])
    for k in range(3):
        d = t - x[8 + k]
        model = model + x[1 + k] * np.exp(-d * d * x[5 + k])
    return _OSB2_Y - model


@_jitable
def _osb2_jac(x):
    t = _OSB2_T
    e0 = np.exp(-t * x[4])
    J = np.zeros((65, 11))
    J[:, 0] = -e0
    J[:, 4] = t * x[0] * e0
    for k in range(3):
        d = t - x[8 + k]
        g = np.exp(-d * d * x[5 + k])
        J[:, 1 + k] = -g
        J[:, 5 + k] = x[1 + k] * d * d * g
        J[:, 8 + k] = -2.0 * x[5 + k] * x[1 + k] * d * g
    return J


@_jitable
def _osb2_rhv(x, w, v):
    # residual Hessian = -(model Hessian); model terms written out in the comments
    t = _OSB2_T
    e0 = np.exp(-t * x[4])
    m04 = -t * e0  # d2/dx1 dx5 of x1 e^{-t x5}
    m44 = t * t * x[0] * e0
    out = np.empty(11)
    out[0] = -np.sum(w * m04) * v[4]
    out[4] = -np.sum(w * (m04 * v[0] + m44 * v[4]))
    for k in range(3):
        ia = 1 + k  # amplitude A
        ir = 5 + k  # rate a
        ic = 8 + k  # centre c
        amp = x[ia]
        a = x[ir]
        d = t - x[ic]
        d2 = d * d
        g = np.exp(-d2 * a)
        # model term A exp(-a (t - c)^2)
        m_ar = -d2 * g
        m_ac = 2.0 * a * d * g
        m_rr = amp * d2 * d2 * g
        m_rc = 2.0 * amp * d * g * (1.0 - a * d2)
        m_cc = 2.0 * a * amp * g * (2.0 * a * d2 - 1.0)
        out[ia] = -np.sum(w * (m_ar * v[ir] + m_ac * v[ic]))
        out[ir] = -np.sum(w * (m_ar * v[ia] + m_rr * v[ir] + m_rc * v[ic]))
        out[ic] = -np.sum(w * (m_ac * v[ia] + m_rc * v[ir] + m_cc * v[ic]))
    return out


def _osb2_fun(x):
    return _ls_fun(_osb2_res(x))


def _osb2_grad(x):
    return _ls_grad(_osb2_res(x), _osb2_jac(x))


def _osb2_hessp(x, v):
    r = _osb2_res(x)
    return _ls_hessp(r, _osb2_jac(x), v, _osb2_rhv(x, r, v))


# (20) Watson, 2 <= n <= 31, m = 31: for i = 1..29, t_i = i/29,
# r_i = sum_{j=2}^n (j-1) x_j t_i^{j-2} - (sum_{j=1}^n x_j t_i^{j-1})^2 - 1,
# r_30 = x_1, r_31 = x_2 - x_1^2 - 1
_WATSON_T = np.arange(1.0, 30.0) / 29.0


@_jitable
def _watson_powers(n):
    # P[i, j] = t_i^j and D[i, j] = j t_i^(j-1) = d/dt of P[i, j]
    P = np.empty((29, n))
    D = np.zeros((29, n))
    P[:, 0] = 1.0
    for j in range(1, n):
        P[:, j] = P[:, j - 1] * _WATSON_T
        D[:, j] = j * P[:, j - 1]
    return P, D


@_jitable
def _watson_res(x):
    n = x.size
    P, D = _watson_powers(n)
    s = np.dot(P, x)
    r = np.empty(31)
    r[:29] = np.dot(D, x) - s * s - 1.0
    r[29] = x[0]
    r[30] = x[1] - x[0] ** 2 - 1.0
    return r


@_jitable
def _watson_jac(x):
    n = x.size
    P, D = _watson_powers(n)
    s = np.dot(P, x)
    J = np.zeros((31, n))
    for i in range(29):
        J[i, :] = D[i, :] - 2.0 * s[i] * P[i, :]
    J[29, 0] = 1.0
    J[30, 0] = -2.0 * x[0]
    J[30, 1] = 1.0
    return J


@_jitable
def _watson_rhv(x, w, v):
    # Hess r_i = -2 p_i p_i^T (p_i = row i of P) for i <= 29; Hess r_31 = -2 e_1 e_1^T
    P, _ = _watson_powers(x.size)
    out = -2.0 * np.dot(P.T, w[:29] * np.dot(P, v))
    out[0] -= 2.0 * w[30] * v[0]
    return out


def _watson_fun(x):
    return _ls_fun(_watson_res(x))


def _watson_grad(x):
    return _ls_grad(_watson_res(x), _watson_jac(x))


def _watson_hessp(x, v):
    r = _watson_res(x)
    return _ls_hessp(r, _watson_jac(x), v, _watson_rhv(x, r, v))


# (23) Penalty I, m = n + 1: r_i = sqrt(a) (x_i - 1), r_{n+1} = sum x_j^2 - 1/4, a = 1e-5
_PEN_SQRT_A = np.sqrt(1.0e-5)


@_jitable
def _pen1_res(x):
    n = x.size
    r = np.empty(n + 1)
    r[:n] = _PEN_SQRT_A * (x - 1.0)
    r[n] = np.dot(x, x) - 0.25
    return r


@_jitable
def _pen1_jac(x):
    n = x.size
    J = np.zeros((n + 1, n))
    for j in range(n):
        J[j, j] = _PEN_SQRT_A
    J[n, :] = 2.0 * x
    return J


@_jitable
def _pen1_rhv(x, w, v):
    return 2.0 * w[x.size] * v


def _pen1_fun(x):
    return _ls_fun(_pen1_res(x))


def _pen1_grad(x):
    return _ls_grad(_pen1_res(x), _pen1_jac(x))


def _pen1_hessp(x, v):
    r = _pen1_res(x)
    return _ls_hessp(r, _pen1_jac(x), v, _pen1_rhv(x, r, v))


# (24) Penalty II, m = 2n, a = 1e-5:
# r_1 = x_1 - 0.2
# r_i = sqrt(a) (e^{x_i/10} + e^{x_{i-1}/10} - y_i),  y_i = e^{i/10} + e^{(i-1)/10},  2 <= i <= n
# r_i = sqrt(a) (e^{x_{i-n+1}/10} - e^{-1/10}),                                     n < i < 2n
# r_2n = sum_{j=1}^n (n - j + 1) x_j^2 - 1
_EXP_M01 = np.exp(-0.1)


@_jitable
def _pen2_res(x):
    n = x.size
    i = np.arange(2.0, n + 1.0)  # the paper's i = 2..n
    e = np.exp(x / 10.0)
    r = np.empty(2 * n)
    r[0] = x[0] - 0.2
    r[1:n] = _PEN_SQRT_A * (e[1:] + e[:-1] - (np.exp(i / 10.0) + np.exp((i - 1.0) / 10.0)))
    r[n : 2 * n - 1] = _PEN_SQRT_A * (e[1:] - _EXP_M01)
    r[2 * n - 1] = np.dot(np.arange(n, 0.0, -1.0), x * x) - 1.0
    return r


@_jitable
def _pen2_jac(x):
    n = x.size
    de = _PEN_SQRT_A / 10.0 * np.exp(x / 10.0)
    J = np.zeros((2 * n, n))
    J[0, 0] = 1.0
    for k in range(1, n):
        J[k, k] = de[k]
        J[k, k - 1] = de[k - 1]
        J[n - 1 + k, k] = de[k]
    J[2 * n - 1, :] = 2.0 * np.arange(n, 0.0, -1.0) * x
    return J


@_jitable
def _pen2_rhv(x, w, v):
    n = x.size
    d2e = _PEN_SQRT_A / 100.0 * np.exp(x / 10.0)
    out = 2.0 * w[2 * n - 1] * np.arange(n, 0.0, -1.0) * v
    out[1:] += (w[1:n] + w[n : 2 * n - 1]) * d2e[1:] * v[1:]
    out[:-1] += w[1:n] * d2e[:-1] * v[:-1]
    return out


def _pen2_fun(x):
    return _ls_fun(_pen2_res(x))


def _pen2_grad(x):
    return _ls_grad(_pen2_res(x), _pen2_jac(x))


def _pen2_hessp(x, v):
    r = _pen2_res(x)
    return _ls_hessp(r, _pen2_jac(x), v, _pen2_rhv(x, r, v))


# (26) Trigonometric, m = n: r_i = n - sum_j cos x_j + i (1 - cos x_i) - sin x_i
@_jitable
def _trig_res(x):
    n = x.size
    c = np.cos(x)
    return n - np.sum(c) + np.arange(1.0, n + 1.0) * (1.0 - c) - np.sin(x)


@_jitable
def _trig_jac(x):
    n = x.size
    s = np.sin(x)
    c = np.cos(x)
    J = np.empty((n, n))
    for i in range(n):
        J[i, :] = s
        J[i, i] += (i + 1) * s[i] - c[i]
    return J


@_jitable
def _trig_rhv(x, w, v):
    # Hess r_i = diag(cos x) + ((i cos x_i + sin x_i)) e_i e_i^T
    i = np.arange(1.0, x.size + 1.0)
    c = np.cos(x)
    return (np.sum(w) * c + w * (i * c + np.sin(x))) * v


def _trig_fun(x):
    return _ls_fun(_trig_res(x))


def _trig_grad(x):
    return _ls_grad(_trig_res(x), _trig_jac(x))


def _trig_hessp(x, v):
    r = _trig_res(x)
    return _ls_hessp(r, _trig_jac(x), v, _trig_rhv(x, r, v))


# (28) Discrete boundary value, m = n: h = 1/(n+1), t_i = i h, x_0 = x_{n+1} = 0,
# r_i = 2 x_i - x_{i-1} - x_{i+1} + h^2 (x_i + t_i + 1)^3 / 2
@_jitable
def _dbv_res(x):
    n = x.size
    h = 1.0 / (n + 1.0)
    t = np.arange(1.0, n + 1.0) * h
    r = 2.0 * x + 0.5 * h * h * (x + t + 1.0) ** 3
    r[1:] -= x[:-1]
    r[:-1] -= x[1:]
    return r


@_jitable
def _dbv_jac(x):
    n = x.size
    h = 1.0 / (n + 1.0)
    J = np.zeros((n, n))
    for i in range(n):
        J[i, i] = 2.0 + 1.5 * h * h * (x[i] + (i + 1) * h + 1.0) ** 2
        if i > 0:
            J[i, i - 1] = -1.0
        if i < n - 1:
            J[i, i + 1] = -1.0
    return J


@_jitable
def _dbv_rhv(x, w, v):
    n = x.size
    h = 1.0 / (n + 1.0)
    t = np.arange(1.0, n + 1.0) * h
    return 3.0 * h * h * w * (x + t + 1.0) * v


def _dbv_fun(x):
    return _ls_fun(_dbv_res(x))


def _dbv_grad(x):
    return _ls_grad(_dbv_res(x), _dbv_jac(x))


def _dbv_hessp(x, v):
    r = _dbv_res(x)
    return _ls_hessp(r, _dbv_jac(x), v, _dbv_rhv(x, r, v))


# (30) Broyden tridiagonal, m = n: r_i = (3 - 2 x_i) x_i - x_{i-1} - 2 x_{i+1} + 1,
# x_0 = x_{n+1} = 0
@_jitable
def _btri_res(x):
    r = (3.0 - 2.0 * x) * x + 1.0
    r[1:] -= x[:-1]
    r[:-1] -= 2.0 * x[1:]
    return r


@_jitable
def _btri_jac(x):
    n = x.size
    J = np.zeros((n, n))
    for i in range(n):
        J[i, i] = 3.0 - 4.0 * x[i]
        if i > 0:
            J[i, i - 1] = -1.0
        if i < n - 1:
            J[i, i + 1] = -2.0
    return J


@_jitable
def _btri_rhv(x, w, v):
    return -4.0 * w * v


def _btri_fun(x):
    return _ls_fun(_btri_res(x))


def _btri_grad(x):
    return _ls_grad(_btri_res(x), _btri_jac(x))


def _btri_hessp(x, v):
    r = _btri_res(x)
    return _ls_hessp(r, _btri_jac(x), v, _btri_rhv(x, r, v))


# --------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------
class _Impl(NamedTuple):
    """The plain functions of one problem and their (lazily compiled) dispatchers."""

    res: Callable
    jac: Callable
    fun: Callable
    grad: Callable
    hessp: Callable
    fun_jit: Any
    grad_jit: Any
    hessp_jit: Any


def _impl(prefix):
    # Looked up by one naming convention, so that no problem can be paired with
    # another's functions by a copy-paste slip; a missing function fails at import.
    g = globals()
    fun, grad, hessp = (g[f"_{prefix}_{k}"] for k in ("fun", "grad", "hessp"))
    return _Impl(
        g[f"_{prefix}_res"], g[f"_{prefix}_jac"], fun, grad, hessp,
        _jit(fun), _jit(grad), _jit(hessp),
    )  # fmt: skip


_IMPLS = {
    p: _impl(p)
    for p in (
        "xrosen froth pbs bbs beale js helical bard gauss meyer box xpowell wood ko bd "
        "osb1 biggs osb2 watson pen1 pen2 trig dbv btri"
    ).split()
}


class _Spec(NamedTuple):
    """How to build one registry entry for a given n."""

    number: int  # the paper's problem number
    impl: str
    n: int  # default (standard) dimension
    n_rule: Callable[[int], bool]  # is this n allowed?
    n_rule_text: str
    m: Callable[[int], int]
    x0: Callable[[int], np.ndarray]
    f_star: Callable[[int], float]
    x_star: Callable[[int], np.ndarray | None]
    local_minima: Callable[[int], tuple] = lambda n: ()
    notes: str = ""


def _const(value):
    return lambda n: value


def _fixed(n0):
    return lambda n: n == n0


def _dbv_x0(n):
    t = np.arange(1.0, n + 1.0) / (n + 1.0)
    return t * (t - 1.0)


def _by_n(table):
    """f* from the paper's table for the n it lists, NaN for any other n."""
    return lambda n: table.get(n, np.nan)


# Powell badly scaled: the paper prints (1.098...e-5, 9.106...); these digits
# solve r(x) = 0 to machine precision (a 40-digit root of r from the printed point),
# so that f(x*) = f* can be tested tightly.
_PBS_X_STAR = (1.0981593296998175e-05, 9.106146739866524)

_SPECS = {
    "rosenbrock": _Spec(
        1, "xrosen", 2, _fixed(2), "n = 2", _const(2),
        lambda n: np.array([-1.2, 1.0]), _const(0.0), lambda n: np.ones(2),
    ),
    "freudenstein_roth": _Spec(
        2, "froth", 2, _fixed(2), "n = 2", _const(2),
        lambda n: np.array([0.5, -2.0]), _const(0.0), lambda n: np.array([5.0, 4.0]),
        local_minima=_const((48.9842,)),
        notes="Local minimum f = 48.9842... at (11.41..., -0.8968...), where most "
        "local solvers stop from the standard start.",
    ),
    "powell_badly_scaled": _Spec(
        3, "pbs", 2, _fixed(2), "n = 2", _const(2),
        lambda n: np.array([0.0, 1.0]), _const(0.0), lambda n: np.array(_PBS_X_STAR),
        notes="x* printed in the paper as (1.098...e-5, 9.106...); stored refined "
        "to machine precision.",
    ),
    "brown_badly_scaled": _Spec(
        4, "bbs", 2, _fixed(2), "n = 2", _const(3),
        lambda n: np.array([1.0, 1.0]), _const(0.0), lambda n: np.array([1.0e6, 2.0e-6]),
    ),
    "beale": _Spec(
        5, "beale", 2, _fixed(2), "n = 2", _const(3),
        lambda n: np.array([1.0, 1.0]), _const(0.0), lambda n: np.array([3.0, 0.5]),
    ),
    "jennrich_sampson": _Spec(
        6, "js", 2, _fixed(2), "n = 2", _const(10),
        lambda n: np.array([0.3, 0.4]), _const(124.362), lambda n: np.array([0.2578, 0.2578]),
        notes="m = 10; the paper prints x* = (0.2578..., 0.2578...).",
    ),
    "helical_valley": _Spec(
        7, "helical", 3, _fixed(3), "n = 3", _const(3),
        lambda n: np.array([-1.0, 0.0, 0.0]), _const(0.0), lambda n: np.array([1.0, 0.0, 0.0]),
        notes="theta jumps by 1 across x_1 = 0, x_2 < 0 (the paper's branch cut).",
    ),
    "bard": _Spec(
        8, "bard", 3, _fixed(3), "n = 3", _const(15),
        lambda n: np.array([1.0, 1.0, 1.0]), _const(8.21487e-3), _const(None),
        local_minima=_const((17.4286,)),
        notes="f -> 17.4286... at (0.8406..., -inf, -inf) (a minimum at infinity).",
    ),
    "gaussian": _Spec(
        9, "gauss", 3, _fixed(3), "n = 3", _const(15),
        lambda n: np.array([0.4, 1.0, 0.0]), _const(1.12793e-8), _const(None),
    ),
    "meyer": _Spec(
        10, "meyer", 3, _fixed(3), "n = 3", _const(16),
        lambda n: np.array([0.02, 4000.0, 250.0]), _const(87.9458), _const(None),
        notes="Badly scaled: x* is about (0.0056, 6181, 345).",
    ),
    "box_3d": _Spec(
        12, "box", 3, _fixed(3), "n = 3", _const(10),
        lambda n: np.array([0.0, 10.0, 20.0]), _const(0.0), lambda n: np.array([1.0, 10.0, 1.0]),
        notes="m = 10; f = 0 also at (10, 1, -1) and wherever x_1 = x_2, x_3 = 0.",
    ),
    "powell_singular": _Spec(
        13, "xpowell", 4, _fixed(4), "n = 4", _const(4),
        lambda n: np.array([3.0, -1.0, 0.0, 1.0]), _const(0.0), lambda n: np.zeros(4),
        notes="The Hessian is singular at x*: superlinear methods converge only linearly.",
    ),
    "wood": _Spec(
        14, "wood", 4, _fixed(4), "n = 4", _const(6),
        lambda n: np.array([-3.0, -1.0, -3.0, -1.0]), _const(0.0), lambda n: np.ones(4),
    ),
    "kowalik_osborne": _Spec(
        15, "ko", 4, _fixed(4), "n = 4", _const(11),
        lambda n: np.array([0.25, 0.39, 0.415, 0.39]), _const(3.07505e-4), _const(None),
        local_minima=_const((1.02734e-3,)),
        notes="f -> 1.02734...e-3 at (+inf, -14.07..., -inf, -inf) (a minimum at infinity).",
    ),
    "brown_dennis": _Spec(
        16, "bd", 4, _fixed(4), "n = 4", _const(20),
        lambda n: np.array([25.0, 5.0, -5.0, -1.0]), _const(85822.2), _const(None),
        notes="m = 20.",
    ),
    "osborne_1": _Spec(
        17, "osb1", 5, _fixed(5), "n = 5", _const(33),
        lambda n: np.array([0.5, 1.5, -1.0, 0.01, 0.02]), _const(5.46489e-5), _const(None),
    ),
    "biggs_exp6": _Spec(
        18, "biggs", 6, _fixed(6), "n = 6", _const(13),
        lambda n: np.array([1.0, 2.0, 1.0, 1.0, 1.0, 1.0]), _const(0.0),
        lambda n: np.array([1.0, 10.0, 1.0, 5.0, 4.0, 3.0]),
        local_minima=_const((5.65565e-3,)),
        notes="m = 13. The paper lists f = 5.65565...e-3 for m = 13 (where solvers "
        "usually stop) and f = 0 at (1, 10, 1, 5, 4, 3), the global minimum.",
    ),
    "osborne_2": _Spec(
        19, "osb2", 11, _fixed(11), "n = 11", _const(65),
        lambda n: np.array([1.3, 0.65, 0.65, 0.7, 0.6, 3.0, 5.0, 7.0, 2.0, 4.5, 5.5]),
        _const(4.01377e-2), _const(None),
    ),
    "watson": _Spec(
        20, "watson", 6, lambda n: 2 <= n <= 31, "2 <= n <= 31", _const(31),
        lambda n: np.zeros(n), _by_n({6: 2.28767e-3, 9: 1.39976e-6, 12: 4.72238e-10}), _const(None),
        notes="f* known for n = 6, 9, 12; ill-conditioned for larger n.",
    ),
    "extended_rosenbrock": _Spec(
        21, "xrosen", 10, lambda n: n >= 2 and n % 2 == 0, "n even, n >= 2",
        lambda n: n, lambda n: np.tile([-1.2, 1.0], n // 2), _const(0.0), lambda n: np.ones(n),
        notes="Independent pairs (MGH); scipy.optimize.rosen chains consecutive "
        "variables instead (see fastopt.testing.rosenbrock).",
    ),
    "extended_powell": _Spec(
        22, "xpowell", 12, lambda n: n >= 4 and n % 4 == 0, "n a multiple of 4",
        lambda n: n, lambda n: np.tile([3.0, -1.0, 0.0, 1.0], n // 4), _const(0.0),
        lambda n: np.zeros(n),
        notes="Singular Hessian at x*, as Powell singular.",
    ),
    "penalty_1": _Spec(
        23, "pen1", 4, lambda n: n >= 1, "n >= 1", lambda n: n + 1,
        lambda n: np.arange(1.0, n + 1.0), _by_n({4: 2.24997e-5, 10: 7.08765e-5}), _const(None),
        notes="f* known for n = 4, 10.",
    ),
    "penalty_2": _Spec(
        24, "pen2", 4, lambda n: n >= 2, "n >= 2", lambda n: 2 * n,
        lambda n: np.full(n, 0.5), _by_n({4: 9.37629e-6, 10: 2.93660e-4}), _const(None),
        notes="f* known for n = 4, 10.",
    ),
    "trigonometric": _Spec(
        26, "trig", 10, lambda n: n >= 1, "n >= 1", lambda n: n,
        lambda n: np.full(n, 1.0 / n), _const(0.0), _const(None),
        local_minima=lambda n: (2.79506e-5,) if n == 10 else (),
        notes="For n = 10, Levenberg-Marquardt and BFGS from x0 stop at a local "
        "minimum f = 2.79506e-5 (computed here; the paper lists only f* = 0).",
    ),
    "discrete_boundary_value": _Spec(
        28, "dbv", 10, lambda n: n >= 1, "n >= 1", lambda n: n,
        _dbv_x0, _const(0.0), _const(None),
        notes="x0_j = t_j (t_j - 1), t_j = j/(n+1).",
    ),
    "broyden_tridiagonal": _Spec(
        30, "btri", 10, lambda n: n >= 1, "n >= 1", lambda n: n,
        lambda n: np.full(n, -1.0), _const(0.0), _const(None),
    ),
}  # fmt: skip


def _least_squares_problem(name, n, m, x0, f_star, x_star, impl, local_minima=(), notes=""):
    """A :class:`Problem` from the plain residual, Jacobian and wrapper functions."""
    res = impl.res
    jac = impl.jac

    def fun_and_grad(x):
        r = res(x)
        return _ls_fun(r), _ls_grad(r, jac(x))

    def gauss_newton(x, v):
        return _ls_gn(jac(x), v)

    return Problem(
        name=name, n=n, m=m, x0=x0, f_star=f_star, x_star=x_star,
        fun=impl.fun, grad=impl.grad, fun_and_grad=fun_and_grad, hessp=impl.hessp,
        gauss_newton=gauss_newton, residuals=res, jacobian=jac,
        fun_jit=impl.fun_jit, grad_jit=impl.grad_jit, hessp_jit=impl.hessp_jit,
        local_minima=local_minima, hessp_exact=True, notes=notes,
    )  # fmt: skip


def _build(name, n):
    s = _SPECS[name]
    return _least_squares_problem(
        name, n, s.m(n), s.x0(n), s.f_star(n), s.x_star(n), _IMPLS[s.impl],
        s.local_minima(n), f"Moré, Garbow & Hillstrom (1981) problem {s.number}. {s.notes}".strip(),
    )  # fmt: skip


#: The Moré–Garbow–Hillstrom problems at their standard dimensions, by name.
MGH_PROBLEMS = {name: _build(name, spec.n) for name, spec in _SPECS.items()}


def problem_names():
    """Names of the Moré–Garbow–Hillstrom problems, in the paper's order.

    Returns
    -------
    list of str
    """
    return list(_SPECS)


def get_problem(name, n=None):
    """A Moré–Garbow–Hillstrom problem by name, at its standard or a chosen dimension.

    Parameters
    ----------
    name : str
        A key of :data:`MGH_PROBLEMS`, e.g. ``"watson"``.
    n : int, optional
        Number of variables, for the problems of variable dimension (Watson,
        extended Rosenbrock and Powell, penalty I and II, trigonometric,
        discrete boundary value, Broyden tridiagonal). Default: the standard
        dimension. For a fixed-dimension problem only that dimension is valid.

    Returns
    -------
    Problem
        ``f_star`` is NaN where the paper gives no value for this ``n``. The
        compiled functions are shared across ``n`` (one compilation serves all).

    Raises
    ------
    ValueError
        For an unknown name or an ``n`` the problem does not allow.

    References
    ----------
    Moré, Garbow & Hillstrom, ACM TOMS 7:17-41, 1981.

    Examples
    --------
    >>> from fastopt.testing import get_problem
    >>> p = get_problem("penalty_1", n=10)
    >>> p.m, p.f_star
    (11, 7.08765e-05)
    """
    if name not in _SPECS:
        raise ValueError(f"Unknown problem {name!r}; choose from {', '.join(_SPECS)}")
    spec = _SPECS[name]
    if n is None:
        return MGH_PROBLEMS[name]
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise ValueError(f"Invalid n value: {n!r} (an int is required)")
    n = int(n)
    if n == spec.n:
        return MGH_PROBLEMS[name]
    if not spec.n_rule(n):
        raise ValueError(f"Invalid n value for {name!r}: {n} (requires {spec.n_rule_text})")
    return _build(name, n)
