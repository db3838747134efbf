"""Child process of test_solvers.py::test_ctrl_c_stops_a_compiled_run.

Runs each method named on the command line on a long compiled problem and
reports when a SIGINT interrupted it.
"""

import math
import sys
import time

import numba
import numpy as np

from fastopt._objective import Objective
from fastopt.solvers import SOLVERS


@numba.njit(cache=True)
def slow_fg(x, work):
    # sum(exp(-x)) from 0: no minimum; the gradient underflows to 0 only near
    # x = 745, hundreds of steps away.  The busy loop makes a call cost ms.
    acc = 0.0
    for i in range(work):
        acc += math.sin(i * 1e-9)
    f = 0.0
    g = np.empty_like(x)
    for i in range(x.shape[0]):
        e = math.exp(-x[i])
        f += e
        g[i] = -e
    return f + 0.0 * acc, g


@numba.njit(cache=True)
def slow_fun(x, work):
    return slow_fg(x, work)[0]


def obj(work, maxiter):
    return Objective(
        x0=np.zeros(2),
        fun=slow_fun,
        fg=slow_fg,
        hessp=None,
        args=(work,),
        compiled=True,
        maxiter=maxiter,
        gtol=0.0,
    )


def main():
    for method in sys.argv[1:]:
        mod = SOLVERS[method]
        mod.run(obj(1, 3), mod.Options())  # compile, untimed
        print("ready", flush=True)
        try:
            out = mod.run(obj(300000, 10**9), mod.Options())
            print("finished", out["status"], flush=True)
        except KeyboardInterrupt:
            print("interrupted", time.time(), flush=True)


if __name__ == "__main__":
    main()
