"""
Loss versus iteration on Moré-Garbow-Hillstrom problems
=======================================================

The second-order solvers against Adam and scipy's CG on six of the
Moré-Garbow-Hillstrom (1981) least-squares problems, from the standard
starts.  The curves show :math:`f - f^*` (or :math:`f` where :math:`f^* = 0`)
after every iteration, recorded with a callback.  SCG needs no tuning and no
line search; L-BFGS (with the Moré-Thuente line search) takes a few tens of
cheap iterations; Hessian-free (here with the exact Gauss-Newton product of the
residuals) takes few, expensive iterations; Adam, a stochastic method, needs
many more on these deterministic problems.
"""

import matplotlib.pyplot as plt
import numpy as np
import scipy.optimize

import fastopt
from fastopt.testing import MGH_PROBLEMS

names = ["rosenbrock", "beale", "helical_valley", "powell_singular", "wood", "bard"]
runs = {
    "scg": {},
    "hessian-free (Gauss-Newton)": {"gauss_newton": True},
    "lbfgs": {},
    "adahessian": {"learning_rate": 0.5},
    "adam": {"learning_rate": 0.05},
}
fig, axes = plt.subplots(2, 3, figsize=(12, 7))


def recorder(trace, gap):
    """A scipy-style callback that appends f - f* of every iterate to ``trace``."""

    def callback(intermediate_result):
        trace.append(gap(intermediate_result.fun))

    return callback


for ax, name in zip(axes.flat, names, strict=False):
    p = MGH_PROBLEMS[name]

    def gap(f, p=p):
        # floor at 1e-17: the curves end where the solver reached f* to rounding
        return max(f - p.f_star, 1e-17) if np.isfinite(f) else np.nan

    for label, opts in runs.items():
        method = label.split(" ")[0]
        opts = dict(opts)
        if opts.pop("gauss_newton", False):
            opts["gauss_newton"] = lambda x, v, p=p: p.gauss_newton(x, v)
        trace = [gap(p.fun(p.x0))]
        fastopt.minimize(p.fun, p.x0, jac=p.grad, method=method,
                         hessp=p.hessp if method == "adahessian" else None,
                         callback=recorder(trace, gap),
                         options={"maxiter": 3000, "gtol": 1e-8, **opts})  # fmt: skip
        ax.semilogy(trace, label=label)
    trace = [gap(p.fun(p.x0))]
    scipy.optimize.minimize(
        p.fun,
        p.x0,
        jac=p.grad,
        method="CG",
        options={"gtol": 1e-8},
        callback=lambda xk, trace=trace, p=p: trace.append(gap(p.fun(xk))),
    )
    ax.semilogy(trace, "k--", lw=1, label="scipy CG")
    ax.set_xscale("symlog", linthresh=10)
    ax.set_ylim(1e-17, 10 * gap(p.fun(p.x0)))
    ax.set_title(f"{name} (n={p.n})")
    ax.set_xlabel("iteration")
    ax.set_ylabel("$f - f^*$")
axes[0, 0].legend(fontsize=8)
fig.tight_layout()
plt.show()
