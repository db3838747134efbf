"""``python -m fastopt precompile``: pay numba's one-time compile ahead of time.

fastopt's kernels are compiled on first use and cached to disk (numba's
``cache=True``, under ``__pycache__`` next to the package or in
``NUMBA_CACHE_DIR``); every later process loads them.  A Docker image or a
cluster's workers can run this once at build time so that no user process
waits for the compiler::

    python -m fastopt precompile              # every method, float64 + float32 steps
    python -m fastopt precompile adam lbfgs   # some methods
    python -m fastopt precompile --all        # + every variant, the parallel
                                              #   kernels and fastopt.models

What is compiled is what a call would compile, for the common signatures:
``optimizer(m).step`` for float64 and float32 parameters (every variant of
the rule with ``--all``), ``minimize(fun, x0, jac=..., method=m)`` with Python
callables and a float64 ``x0``, and with ``--all`` the parallel step kernels
and one small fit of each :mod:`fastopt.models` estimator (its loss kernels
and the solver loops built on them).  An ``@njit`` objective of your own is
not known here: its loop compiles (and is cached, with ``cache=True``) on its
first use.
"""

import argparse
import sys
import time
import warnings

import numpy as np


def _step_signature(kid, dtype):
    """The argument types of ``cpu.SERIAL[kid]`` for parameters of ``dtype``."""
    from numba import typeof

    from .kernels import cpu
    from .rules import KERNEL_TABLE

    x = np.zeros(2, dtype)
    S = np.zeros((len(KERNEL_TABLE[kid][1].slots), 2), dtype)
    h = np.zeros(4)
    c = np.zeros(cpu.N_COEFFS, dtype)
    # as optim.Optimizer.step passes them: t a Python int, lr and aux floats
    return tuple(typeof(v) for v in (x, x, S, h, 1, 0.1, 0.0, c))


def _step_kernels(method, variants):
    """Kernel ids of ``method``: its default one, or every variant of its rule."""
    from .optim import optimizer
    from .rules import KERNEL_IDS, RULES

    if not variants:
        return [optimizer(method).kid]
    return [KERNEL_IDS[key] for key in RULES[method].KERNELS]


def _quadratic(x):
    return float(0.5 * x @ x), x.copy()


def _hessp(x, p):
    return p.copy()


def _minimize(method):
    from . import minimize

    x0 = np.linspace(-1.0, 1.0, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a few iterations: may not converge
        minimize(_quadratic, x0, jac=True, method=method, options={"maxiter": 3})


def _models():
    from .models import LinearRegression, LinearSVC, LogisticRegression, MLPClassifier, MLPRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    y2 = (X[:, 0] > 0).astype(int)
    y3 = np.digitize(X[:, 0], [-0.5, 0.5])
    yr = X @ np.arange(4.0)
    fits = [
        ("binary", LogisticRegression(), y2),
        ("3 classes", LogisticRegression(), y3),
        ("binary", LinearSVC(), y2),
        ("real", LinearRegression(), yr),
        ("3 classes", MLPClassifier(max_iter=2), y3),
        ("real", MLPRegressor(max_iter=2), yr),
    ]
    for what, est, y in fits:
        yield f"{type(est).__name__} ({what})", lambda est=est, y=y: _quiet_fit(est, X, y)


def _quiet_fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny fits: convergence is not the point
        # twice: a process's first fit of a kind runs the solver's Python
        # driver on the kernels, the next the compiled loop (models._base.driven_fg)
        est.fit(X, y)
        est.fit(X, y)


def tasks(methods, everything=False):
    """``(label, thunk)`` pairs: calling each thunk compiles (or loads) one thing."""
    from ._minimize import get_method
    from .kernels import cpu
    from .rules import KERNEL_TABLE, RULES

    out = []
    for m in methods:
        if m in RULES:
            for kid in _step_kernels(m, everything):
                key = KERNEL_TABLE[kid][0]
                for dtype in (np.float64, np.float32):
                    sig = _step_signature(kid, dtype)
                    out.append(
                        (
                            f"{m}: step {key} {np.dtype(dtype).name}",
                            lambda kid=kid, sig=sig: cpu.SERIAL[kid].compile(sig),
                        )
                    )
                    if everything:
                        out.append(
                            (
                                f"{m}: parallel step {key} {np.dtype(dtype).name}",
                                lambda kid=kid, sig=sig: cpu.parallel_kernel(kid).compile(sig),
                            )
                        )
        name = get_method(m).name
        out.append((f"{m}: minimize", lambda name=name: _minimize(name)))
    if everything:
        out.extend((f"models: {label}", fit) for label, fit in _models())
    return out


def main(argv=None):
    """Entry point of ``python -m fastopt precompile``; returns the exit status."""
    from . import METHODS

    p = argparse.ArgumentParser(
        prog="python -m fastopt precompile",
        description="Compile fastopt's kernels into numba's on-disk cache ahead of time "
        "(once per machine and fastopt version), so that no later process waits for "
        "the compiler.",
    )
    p.add_argument(
        "methods",
        nargs="*",
        metavar="METHOD",
        help=f"methods to compile (default: all of {', '.join(METHODS)})",
    )
    p.add_argument(
        "--all",
        action="store_true",
        dest="everything",
        help="also every variant of each rule (amsgrad, centered, ...), the "
        "parallel kernels and one small fit of each fastopt.models estimator",
    )
    args = p.parse_args(argv)
    from ._minimize import get_method

    methods, bad = [], []
    for m in args.methods or METHODS:
        try:
            name = get_method(m).name  # aliases too ("hf")
        except ValueError:
            bad.append(m)
            continue
        if name not in methods:
            methods.append(name)
    if bad:
        p.error(f"unknown method(s) {', '.join(bad)}; choose from {', '.join(METHODS)}")
    todo = tasks(methods, args.everything)
    t_start = time.perf_counter()
    for k, (label, thunk) in enumerate(todo, 1):
        t0 = time.perf_counter()
        thunk()
        print(
            f"[{k:>{len(str(len(todo)))}}/{len(todo)}] {label:<48} "
            f"{time.perf_counter() - t0:6.2f} s",
            flush=True,
        )
    print(
        f"precompiled {len(todo)} items in {time.perf_counter() - t_start:.1f} s "
        f"(numba cache: {_cache_dir()})"
    )
    return 0


def _cache_dir():
    import numba

    return numba.config.CACHE_DIR or "__pycache__ next to fastopt's modules"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
