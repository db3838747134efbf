"""Jitted test objectives shared by the solver tests (``test_solvers.py``,
``test_lbfgs.py``): Rosenbrock 2-D with its exact gradient, Hessian-vector
and Gauss-Newton products, and a quadratic ``0.5 (x - xs)' A (x - xs)``.
Each gradient is checked in ``test_solvers.test_objective_gradients_and_products``.
"""

import numba
import numpy as np


@numba.njit
def rosen_fun(x):
    a = x[0]
    t = x[1] - a * a
    return 100.0 * t * t + (1.0 - a) * (1.0 - a)


@numba.njit
def rosen_fg(x):
    a = x[0]
    t = x[1] - a * a
    g = np.empty(2)
    g[0] = -400.0 * a * t - 2.0 * (1.0 - a)
    g[1] = 200.0 * t
    return 100.0 * t * t + (1.0 - a) * (1.0 - a), g


@numba.njit
def rosen_grad(x):
    a = x[0]
    t = x[1] - a * a
    g = np.empty(2)
    g[0] = -400.0 * a * t - 2.0 * (1.0 - a)
    g[1] = 200.0 * t
    return g


@numba.njit
def rosen_hessp(x, v):
    a = x[0]
    out = np.empty(2)
    out[0] = (1200.0 * a * a - 400.0 * x[1] + 2.0) * v[0] - 400.0 * a * v[1]
    out[1] = -400.0 * a * v[0] + 200.0 * v[1]
    return out


def rosen_residuals(x):
    """Rosenbrock as least squares: f = r1^2 + r2^2."""
    return np.array([10.0 * (x[1] - x[0] ** 2), 1.0 - x[0]])


@numba.njit
def rosen_gauss_newton(x, v):
    """2 J^T J v, J the Jacobian of ``rosen_residuals``: [[-20 x1, 10], [-1, 0]]."""
    jv0 = -20.0 * x[0] * v[0] + 10.0 * v[1]
    jv1 = -v[0]
    out = np.empty(2)
    out[0] = 2.0 * (-20.0 * x[0] * jv0 - jv1)
    out[1] = 2.0 * (10.0 * jv0)
    return out


@numba.njit
def quad_fun(x, A, xs):
    """0.5 (x - xs)' A (x - xs): f* = 0, and f is computed to full relative
    precision near the minimum (the expanded form 0.5 x'Ax - b'x cancels)."""
    e = x - xs
    return 0.5 * (e @ (A @ e))


@numba.njit
def quad_fg(x, A, xs):
    e = x - xs
    ae = A @ e
    return 0.5 * (e @ ae), ae


@numba.njit
def quad_grad(x, A, xs):
    return A @ (x - xs)


@numba.njit
def quad_hessp(x, v, A, xs):
    return A @ v
