"""Shared helpers of the gallery: 2-D test functions and the methods' paths."""

import numpy as np

import fastopt
from fastopt.testing import beale, rosenbrock, saddle

# Per-method options for the 2-D pictures: each method gets a learning rate
# that makes progress on these scales (one table, no per-picture tuning).
OPTIONS = {
    "sgd": {"learning_rate": 1e-3},
    "momentum": {"learning_rate": 2e-4, "momentum": 0.9},
    "nag": {"learning_rate": 2e-4, "momentum": 0.9},
    "rprop": {"learning_rate": 1e-2},
    "adagrad": {"learning_rate": 0.5},
    "rmsprop": {"learning_rate": 1e-2},
    "adadelta": {"learning_rate": 1.0},
    "adam": {"learning_rate": 5e-2},
    "adamax": {"learning_rate": 5e-2},
}


def quadratic_2d(cond=50.0, angle=0.5):
    """An ill-conditioned 2-D quadratic with a rotated eigenbasis."""
    c, s = np.cos(angle), np.sin(angle)
    Q = np.array([[c, -s], [s, c]])
    A = Q @ np.diag([1.0, 1.0 / cond]) @ Q.T * 10

    def fun(x):
        return 0.5 * x @ A @ x

    def grad(x):
        return A @ x

    return fun, grad


def functions():
    """``name -> (fun, grad, x0, x_star, (xlim, ylim))`` for the pictures."""
    r = rosenbrock(2)
    qf, qg = quadratic_2d()
    return {
        "Rosenbrock": (r.fun, r.grad, np.array([-1.2, 1.0]), np.array([1.0, 1.0]),
                       ((-1.6, 1.4), (-0.6, 1.6))),
        "Beale": (beale.fun, beale.grad, np.array([1.0, 1.0]), np.array([3.0, 0.5]),
                  ((-0.5, 4.0), (-1.0, 1.6))),
        "Saddle": (saddle.fun, saddle.grad, np.array([-1.0, 1e-3]), np.array([0.0, np.sqrt(2)]),
                   ((-1.2, 1.2), (-0.6, 1.8))),
        "Ill-conditioned quadratic": (qf, qg, np.array([-1.5, 1.2]), np.zeros(2),
                                      ((-2.0, 2.0), (-2.0, 2.0))),
    }  # fmt: skip


def paths(fun, grad, x0, methods=OPTIONS, maxiter=2000):
    """Run every method from ``x0``; returns ``{method: (n_points, 2) array}``."""
    out = {}
    for m, opts in methods.items():
        opts = {**opts, "maxiter": maxiter, "return_all": True}
        res = fastopt.minimize(fun, x0, jac=grad, method=m, options=opts)
        out[m] = np.array(res.allvecs)
    return out


def contour(ax, fun, xlim, ylim, n=200, log=True):
    """Filled contours of ``fun`` on a grid (log-spaced levels where f >= 0)."""
    xs = np.linspace(*xlim, n)
    ys = np.linspace(*ylim, n)
    Z = np.array([[fun(np.array([a, b])) for a in xs] for b in ys])
    if log and Z.min() >= 0:
        levels = np.logspace(np.log10(max(Z.min(), 1e-3)), np.log10(Z.max()), 25)
        ax.contour(xs, ys, Z, levels=levels, cmap="Greys", linewidths=0.6, norm="log")
    else:
        ax.contour(xs, ys, Z, levels=25, cmap="Greys", linewidths=0.6)
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)
