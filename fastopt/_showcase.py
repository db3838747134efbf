"""``python -m fastopt``: race every method on standard problems.

Every method in :data:`fastopt.METHODS` (read at run time, so methods
registered later take part) runs on four problems from
:mod:`fastopt.testing`:

- the Rosenbrock function in 2-D and in 100-D, from ``(-1.2, 1, -1.2, 1, ...)``;
- an ill-conditioned quadratic (``n = 100``, condition number ``1e4``);
- L2-regularised logistic regression on ``20000 x 50`` generated data:
  minibatches (``batch_size=256``, 5 epochs) for the stochastic methods, the
  full batch for the deterministic solvers.

One table per problem: final f, f - f*, iterations, evaluations, wall time
and success. Where matplotlib is installed, a PNG shows each method's path on
the 2-D Rosenbrock contours.

By default the objectives are plain NumPy functions, so
:func:`fastopt.minimize` runs its Python driver: a Python loop around the
cached step and solver kernels, which compile once per machine (about 30 s of
CPU for the whole race with an empty numba cache, measured on the 2-core
development machine; a progress bar per problem names the method running).
``--driver compiled`` races numba ``@njit`` objectives through the compiled
driver instead: the whole loop in nopython mode, with the objective built in.
That loop is compiled per method and objective (about a second each); the
Rosenbrock and logistic objectives are cached kernels (``cache=True``), so
their loops are cached too and a later run loads them, while the quadratic's
functions are closures over its random matrix, which numba cannot cache, so
its loops compile in every process.  A one-iteration warm-up call before each
timed run takes the compile, and the table reports it in its own column.

Per-method options (:data:`OPTIONS`)
------------------------------------
The learning rates were picked once, by hand, from coarse grids (steps of
about 3x) on the full-size problems, for steady progress over the whole
budget rather than for the best final value, and then fixed; a method that
fails a problem with them shows as failing. Everything not listed is the
method's default (torch.optim's, for the first-order rules).

- Rosenbrock: sgd at ``lr=2e-3`` diverges on the 100-D problem, ``1e-3`` is
  stable on both; nag likewise needs ``3e-4`` where momentum takes ``1e-3``.
- The quadratic's largest eigenvalue is ``L = 1e4``: sgd steps ``1/L``;
  momentum and nag at the same step converge (the heavy-ball speed-up on an
  ill-conditioned problem) where sgd does not.
- The logistic loss with standard normal features has ``L`` of about
  ``0.25 (1 + sqrt(50 / 20000))^2``, i.e. 0.3, so the steps are larger. The
  stochastic methods end at the noise floor of their constant steps, the
  expected picture.
- ``rprop``: ``min_step=1e-12`` instead of torch's ``1e-6``: with the
  default floor the iterate keeps oscillating around x* and never meets
  ``gtol`` on the Rosenbrock and quadratic problems. Rprop is a full-batch
  method (minibatch noise breaks its sign test), so it runs on the full
  logistic-regression batch.
- ``adamw`` takes adam's learning rate.  Its decoupled weight decay is a
  regulariser the deterministic problems do not have: with torch's
  ``weight_decay=1e-2`` the decay pulls x toward 0 at every step and the
  iterate settles off x* (2.6e-4 above f* on Rosenbrock 2-D, 4e-2 on
  Rosenbrock 100-D after 20000 iterations), which f* of the plain objective
  cannot judge.  So the decay is off there (``weight_decay=0``: adam's
  iterates) and torch's ``1e-2`` stays on the logistic problem, whose own
  ``l2`` it adds to.
- ``adadelta`` runs with its defaults everywhere: its unit-free steps start
  near ``sqrt(eps)``, and it makes slow progress on these problems.
- ``adahessian``: ``learning_rate=1.0`` on the deterministic problems (a full
  Newton-like step along the diagonal estimate; Yao et al.'s 0.15, tuned for
  minibatch training, ends 1e-3 to 45 above f* after 20000 iterations), 0.05
  on minibatches.
- ``hessian-free``: at most 200 outer iterations; each runs up to
  ``cg_maxiter=250`` curvature products, so that is already more curvature
  work than the first-order methods' gradient budget.  On Rosenbrock
  ``preconditioner="none"``: the default preconditioner is built from the
  squared gradient, which vanishes at a stationary point; with it the 100-D
  problem needs about 450 outer iterations and 97,000 products (the row
  failed at 200), without it 162 and about 3,200 (to the 100-D function's
  local minimum near ``x_1 = -1``, f = 3.99, from this start).

A method registered without an entry here runs with its defaults (and the
problem's iteration budget).
"""

import argparse
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field

import numba
import numpy as np

import fastopt

from . import _status
from ._jit import KERNEL
from ._methods import COMMON, get_method
from ._progress import Progress
from .testing import ill_conditioned_quadratic, logistic_regression_data, rosenbrock

#: ridge strength of the logistic-regression problem
L2 = 1e-3

# ---------------------------------------------------------------------------
# The per-method option table. Keys of the inner dicts are problem families
# ("rosenbrock", "quadratic", "logistic") or "*" for all of them; a family's
# entry is merged over "*". See the module docstring for the reasons.
# ---------------------------------------------------------------------------
OPTIONS = {
    "sgd": {
        "rosenbrock": {"learning_rate": 1e-3},
        "quadratic": {"learning_rate": 1e-4},
        "logistic": {"learning_rate": 0.1},
    },
    "momentum": {
        "*": {"momentum": 0.9},
        "rosenbrock": {"learning_rate": 1e-3},
        "quadratic": {"learning_rate": 1e-4},
        "logistic": {"learning_rate": 1e-2},
    },
    "nag": {
        "*": {"momentum": 0.9},
        "rosenbrock": {"learning_rate": 3e-4},
        "quadratic": {"learning_rate": 1e-4},
        "logistic": {"learning_rate": 1e-2},
    },
    "rprop": {"*": {"min_step": 1e-12}},
    "adagrad": {
        "rosenbrock": {"learning_rate": 0.5},
        "quadratic": {"learning_rate": 0.5},
        "logistic": {"learning_rate": 0.1},
    },
    "rmsprop": {
        "rosenbrock": {"learning_rate": 1e-4, "momentum": 0.9},
        "quadratic": {"learning_rate": 1e-4, "momentum": 0.9},
        "logistic": {"learning_rate": 3e-3},
    },
    "adadelta": {},
    "adam": {
        "rosenbrock": {"learning_rate": 0.05},
        "quadratic": {"learning_rate": 1e-2},
        "logistic": {"learning_rate": 1e-2},
    },
    "adamw": {
        "rosenbrock": {"learning_rate": 0.05, "weight_decay": 0.0},
        "quadratic": {"learning_rate": 1e-2, "weight_decay": 0.0},
        "logistic": {"learning_rate": 1e-2},
    },
    "adamax": {"*": {"learning_rate": 1e-2}},
    "scg": {},
    "hessian-free": {"*": {"maxiter": 200}, "rosenbrock": {"preconditioner": "none"}},
    "adahessian": {
        "rosenbrock": {"learning_rate": 1.0},
        "quadratic": {"learning_rate": 1.0},
        "logistic": {"learning_rate": 0.05},
    },
}

#: first-order methods that run on the full batch of a data problem
FULL_BATCH = frozenset({"rprop"})
#: second-order methods that run on minibatches of a data problem
MINIBATCH = frozenset({"adahessian"})


def method_options(name, family):
    """The options of method ``name`` on problem ``family`` (a new dict)."""
    table = OPTIONS.get(name, {})
    return {**table.get("*", {}), **table.get(family, {})}


def uses_minibatches(name):
    """Whether ``name`` runs on minibatches of a data problem."""
    if name in MINIBATCH:
        return True
    return get_method(name).kind == "first-order" and name not in FULL_BATCH


# ---------------------------------------------------------------------------
# Logistic regression with the data in `args`, so that minibatch mode can
# slice it: fastopt.testing's jitted functions are closures over the full data
# set. Value and gradient share one product X w; module-level and cached.
# ---------------------------------------------------------------------------
@numba.njit(**KERNEL)
def logistic_fg(w, X, y, l2):
    """Mean logistic loss of labels ``y`` in {0, 1} plus ``l2/2 |w|^2``, and its gradient."""
    z = np.dot(X, w)
    n = X.shape[0]
    f = np.sum(np.logaddexp(0.0, z) - y * z) / n + 0.5 * l2 * np.dot(w, w)
    p = 0.5 * (1.0 + np.tanh(0.5 * z))  # sigmoid(z) without overflow
    return f, np.dot(X.T, p - y) / n + l2 * w


@numba.njit(**KERNEL)
def logistic_hessp(w, v, X, y, l2):
    """Hessian of :func:`logistic_fg` times ``v``."""
    p = 0.5 * (1.0 + np.tanh(0.5 * np.dot(X, w)))
    return np.dot(X.T, p * (1.0 - p) * np.dot(X, v)) / X.shape[0] + l2 * v


# ---------------------------------------------------------------------------
# Problems
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Sizes:
    """Problem sizes and budgets of one run mode."""

    rosen_n: int  # dimension of the large Rosenbrock problem
    maxiter: int  # iteration budget of the deterministic problems
    quad_n: int
    quad_cond: float
    samples: int
    features: int
    batch_size: int
    epochs: int
    full_batch_maxiter: int  # iterations of full-batch methods on the data problem


FULL = Sizes(rosen_n=100, maxiter=20000, quad_n=100, quad_cond=1e4, samples=20000,
             features=50, batch_size=256, epochs=5, full_batch_maxiter=100)  # fmt: skip
QUICK = Sizes(rosen_n=10, maxiter=1000, quad_n=20, quad_cond=1e3, samples=2000,
              features=10, batch_size=256, epochs=2, full_batch_maxiter=30)  # fmt: skip


@dataclass
class Case:
    """One problem of the race, in the form :func:`fastopt.minimize` takes.

    ``jitted`` and ``python`` are ``(fun, jac, hessp)`` triples: numba
    dispatchers for the compiled driver, plain functions for the Python one.
    """

    title: str
    family: str
    jitted: tuple
    python: tuple
    x0: np.ndarray
    f_star: float
    maxiter: int
    args: tuple = ()
    minibatch: dict | None = None  # minibatch options for the stochastic methods
    full_batch_maxiter: int | None = None
    plot: bool = False  # record the paths for the picture
    local_minima: tuple = ()  # values of other local minima (fastopt.testing)


def _is_jitted(f):
    return isinstance(f, numba.core.registry.CPUDispatcher)


def make_cases(sizes):
    """The problems of the race for ``sizes`` (:data:`FULL` or :data:`QUICK`)."""
    cases = []
    for n in (2, sizes.rosen_n):
        p = rosenbrock(n)
        cases.append(Case(
            title=f"Rosenbrock {n}-D from {'(-1.2, 1)' if n == 2 else '(-1.2, 1, -1.2, ...)'}",
            family="rosenbrock",
            jitted=(p.fun_jit, p.grad_jit, p.hessp_jit), python=(p.fun, p.grad, p.hessp),
            x0=p.x0, f_star=p.f_star, maxiter=sizes.maxiter, plot=n == 2,
            local_minima=tuple(p.local_minima),
        ))  # fmt: skip
    q = ill_conditioned_quadratic(sizes.quad_n, sizes.quad_cond, seed=0)
    cases.append(Case(
        title=f"ill-conditioned quadratic (n={sizes.quad_n}, cond {sizes.quad_cond:.0e})",
        family="quadratic", jitted=(q.fun_jit, q.grad_jit, q.hessp_jit),
        python=(q.fun, q.grad, q.hessp), x0=q.x0, f_star=q.f_star, maxiter=sizes.maxiter,
    ))  # fmt: skip
    X, y, lp = logistic_regression_data(sizes.samples, sizes.features, seed=0, l2=L2)
    cases.append(Case(
        title=f"logistic regression ({sizes.samples} x {sizes.features}, l2 {L2:g})",
        family="logistic", jitted=(logistic_fg, True, logistic_hessp),
        python=(logistic_fg.py_func, True, logistic_hessp.py_func),
        x0=lp.x0, f_star=lp.f_star, maxiter=sizes.maxiter, args=(X, y, L2),
        minibatch={"batch_size": sizes.batch_size, "epochs": sizes.epochs, "seed": 0},
        full_batch_maxiter=sizes.full_batch_maxiter,
    ))  # fmt: skip
    return cases


# ---------------------------------------------------------------------------
# Running one method on one problem
# ---------------------------------------------------------------------------
@dataclass
class Row:
    """One method's result on one problem, as the table and the picture need it."""

    method: str
    mode: str
    options: dict
    res: object = None  # OptimizeResult, or None after an exception
    warmup_s: float = math.nan
    time_s: float = math.nan
    error: str = ""
    warnings: list = field(default_factory=list)
    path: np.ndarray | None = None


def _run_options(name, case):
    """``(options, mode label, options from the table)`` of ``name`` on ``case``."""
    opts = {"maxiter": case.maxiter}
    if case.minibatch is not None:
        if uses_minibatches(name):
            opts = dict(case.minibatch)
            mode = f"mb {case.minibatch['batch_size']}x{case.minibatch['epochs']}ep"
        else:
            opts = {"maxiter": case.full_batch_maxiter}
            mode = "full"
    else:
        mode = "full"
    table = method_options(name, case.family)
    opts.update(table)
    return opts, mode, table


def run_method(name, case, compiled=True, plot=False):
    """Warm up, then time, ``name`` on ``case``; with ``plot``, record the path too.

    ``compiled`` picks the numba objectives (fastopt's compiled driver) or the
    plain ones (the Python driver).
    """
    opts, mode, table = _run_options(name, case)
    row = Row(method=name, mode=mode, options=table)
    fun, jac, hessp = case.jitted if compiled else case.python
    kw = {"args": case.args, "jac": jac, "method": name}
    if get_method(name).uses_hessp:
        kw["hessp"] = hessp
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            t0 = time.perf_counter()
            fastopt.minimize(fun, case.x0, options={**opts, "maxiter": 1}, **kw)
            row.warmup_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            row.res = fastopt.minimize(fun, case.x0, options=opts, **kw)
            row.time_s = time.perf_counter() - t0
            if plot:
                # a second, untimed run: return_all returns to Python after every step
                res = fastopt.minimize(fun, case.x0, options={**opts, "return_all": True}, **kw)
                row.path = np.asarray(res.allvecs)
        except Exception as exc:  # a showcase reports a broken method, it does not stop
            row.error = f"{type(exc).__name__}: {exc}"
    seen = set()
    for w in caught:
        msg = f"{w.category.__name__}: {w.message}"
        if msg not in seen:
            seen.add(msg)
            row.warnings.append(msg)
    return row


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------
STOP = {
    _status.SUCCESS: "gtol",
    _status.MAXITER: "maxiter",
    _status.MAXFEV: "maxfev",
    _status.NONFINITE_F: "nan f",
    _status.NONFINITE_G: "nan grad",
    _status.NONFINITE_X: "nan x",
    _status.EPOCHS: "epochs",
    _status.FTOL: "ftol",
    _status.XTOL: "xtol",
    _status.LINESEARCH: "no progress",
    _status.NONFINITE_H: "nan Hv",
    _status.CALLBACK: "callback",
}

COLUMNS = ("method", "mode", "final f", "f - f*", "iters", "nfev", "njev", "nhev",
           "warm-up s", "time s", "success", "stop", "options")  # fmt: skip
RIGHT = {"final f", "f - f*", "iters", "nfev", "njev", "nhev", "warm-up s", "time s"}


def _fmt_options(opts):
    short = {"learning_rate": "lr"}
    return " ".join(f"{short.get(k, k)}={v:g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in opts.items()) or "defaults"  # fmt: skip


def _cells(row, f_star):
    res = row.res
    if res is None:
        return [row.method, row.mode, "-", "-", "-", "-", "-", "-", f"{row.warmup_s:.2f}",
                "-", "no", "error", _fmt_options(row.options)]  # fmt: skip
    gap = res.fun - f_star if math.isfinite(f_star) else math.nan
    return [
        row.method, row.mode, f"{res.fun:.8g}", "-" if math.isnan(gap) else f"{gap:.2e}",
        str(res.nit), str(res.nfev), str(res.njev), str(res.get("nhev", "-")),
        f"{row.warmup_s:.2f}", f"{row.time_s:.3f}", "yes" if res.success else "no",
        STOP.get(res.status, str(res.status)), _fmt_options(row.options),
    ]  # fmt: skip


def format_table(rows, f_star):
    """The result table of one problem, as a string."""
    body = [list(COLUMNS)] + [_cells(r, f_star) for r in rows]
    widths = [max(len(line[k]) for line in body) for k in range(len(COLUMNS))]
    lines = []
    for i, line in enumerate(body):
        cells = [c.rjust(w) if COLUMNS[k] in RIGHT else c.ljust(w)
                 for k, (c, w) in enumerate(zip(line, widths, strict=True))]  # fmt: skip
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _notes(rows):
    out = []
    for r in rows:
        if r.error:
            out.append(f"  {r.method}: {r.error}")
        out.extend(f"  {r.method}: {w}" for w in r.warnings)
    return out


# ---------------------------------------------------------------------------
# The picture
# ---------------------------------------------------------------------------
def _subsample(path, keep_first=300, rest=1200):
    """All of the first ``keep_first`` iterates, then ``rest`` evenly spaced ones."""
    n = path.shape[0]
    if n <= keep_first + rest:
        return path
    idx = np.unique(np.concatenate([np.arange(keep_first),
                                    np.linspace(keep_first, n - 1, rest).astype(int)]))  # fmt: skip
    return path[idx]


def _limits(paths, x0):
    """Axis limits that hold every path, the start and the minimum, within [-2, 2] x [-1, 3]."""
    pts = np.vstack([np.asarray(x0)[None, :], [[1.0, 1.0]], *paths])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    pad = 0.12 * np.maximum(hi - lo, 0.5)
    lo, hi = np.maximum(lo - pad, (-2.0, -1.0)), np.minimum(hi + pad, (2.0, 3.0))
    return (lo[0], hi[0]), (lo[1], hi[1])


def plot_paths(rows, case, output):
    """Write the paths of ``rows`` on the 2-D Rosenbrock contours to ``output`` (PNG).

    Small multiples: one panel per method on shared axes, so that every path
    stays readable however many methods race (one method's oscillation, such
    as adadelta's, cannot hide the others), with every other method's path
    drawn faintly behind for comparison.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    drawn = []
    for k, row in enumerate(rows):
        path = None
        if row.path is not None and row.res is not None:
            path = row.path[np.all(np.isfinite(row.path), axis=1)]
            path = _subsample(path) if path.shape[0] else None
        drawn.append((k, row, path))
    xlim, ylim = _limits([p for _, _, p in drawn if p is not None], case.x0)
    gx, gy = np.meshgrid(np.linspace(*xlim, 300), np.linspace(*ylim, 300))
    fz = 100.0 * (gy - gx**2) ** 2 + (1.0 - gx) ** 2  # scipy.optimize.rosen in 2-D
    levels = np.logspace(-3, 3.5, 14)
    norm = LogNorm(levels[0], levels[-1])

    ncols = min(4, max(1, len(drawn)))
    nrows = -(-len(drawn) // ncols)
    fig = Figure(figsize=(3.4 * ncols, 2.9 * nrows + 0.9), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False)
    colors = _colors(len(rows))
    for ax in axes.flat[len(drawn) :]:
        ax.set_axis_off()
    for ax, (k, row, path) in zip(axes.flat, drawn, strict=False):
        ax.contourf(gx, gy, np.clip(fz, levels[0], None), levels=levels, norm=norm,
                    cmap="Greys", alpha=0.35, extend="max")  # fmt: skip
        for _, other, p in drawn:  # the others, faintly, for comparison
            if p is not None and other is not row:
                ax.plot(p[:, 0], p[:, 1], "-", color="0.55", lw=0.5, alpha=0.35, zorder=2)
        ax.plot(*case.x0, "o", color="k", ms=5, zorder=5)
        ax.plot(1.0, 1.0, "*", color="gold", ms=12, mec="k", mew=0.7, zorder=6)
        if path is None:
            why = row.error or "no path"
            ax.set_title(f"{row.method}: {why[:40]}", fontsize=9, color="#b00000")
            continue
        style = "-" if get_method(row.method).kind == "first-order" else "--"
        ax.plot(path[:, 0], path[:, 1], style, color=colors[k], lw=1.4, zorder=3)
        ax.plot(*path[-1], "o", color=colors[k], ms=5, mec="k", mew=0.6, zorder=4)
        failed = not row.res.success
        ax.set_title(f"{row.method}: f = {row.res.fun:.1e}, {row.res.nit} it"
                     + (" (failed)" if failed else ""), fontsize=9,
                     color="#b00000" if failed else "black")  # fmt: skip
    for col in range(ncols):  # x labels under the lowest panel of each column
        row_idx = max(r for r in range(nrows) if r * ncols + col < len(drawn))
        axes[row_idx, col].set_xlabel("x₁")
        axes[row_idx, col].xaxis.set_tick_params(labelbottom=True)
    for ax in axes[:, 0]:
        ax.set_ylabel("x₂")
    axes[0, 0].set(xlim=xlim, ylim=ylim)
    fig.suptitle("fastopt: every method on the Rosenbrock function "
                 "f = 100 (x₂ − x₁²)² + (1 − x₁)², from (−1.2, 1) (black dot) to the "
                 "minimum (1, 1) (star)\n"
                 f"one panel per method (solid: first-order, dashed: second-order; the other "
                 f"methods in grey); at most {case.maxiter} iterations, options as in the "
                 "printed table", fontsize=10.5)  # fmt: skip
    fig.savefig(output, dpi=100)


#: tab10 without its grey (lost on the grey contours), then darker extras
_PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#bcbd22", "#17becf", "#000000", "#7570b3", "#e6ab02", "#66a61e", "#a6761d",
)  # fmt: skip


def _colors(n):
    return [_PALETTE[k % len(_PALETTE)] for k in range(n)]


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------
def _parser():
    p = argparse.ArgumentParser(
        prog="python -m fastopt",
        description="Race every fastopt method on standard problems: a table per problem, "
        "and the methods' paths on the 2-D Rosenbrock contours as a PNG.",
        epilog="python -m fastopt precompile [--all | METHOD ...] compiles fastopt's kernels "
        "into numba's cache ahead of time (see its --help).",
    )
    p.add_argument("--version", action="version", version=f"fastopt {fastopt.__version__}")
    p.add_argument("--quick", action="store_true",
                   help="small problems, few iterations (a smoke test for CI)")  # fmt: skip
    p.add_argument("--output", default="fastopt-showcase.png", metavar="PATH",
                   help="where to write the PNG (default: %(default)s)")  # fmt: skip
    p.add_argument("--no-plot", action="store_true", help="do not write the PNG")
    p.add_argument("--methods", metavar="M1,M2",
                   help="comma-separated methods (default: all of fastopt.METHODS)")  # fmt: skip
    p.add_argument("--driver", choices=("compiled", "python"),
                   help="python (default): plain objectives, a Python loop around cached "
                   "kernels; compiled: numba objectives, the whole loop in nopython mode "
                   "(built for each method and objective on first use, about a second "
                   "each)")  # fmt: skip
    return p


def _select_methods(parser, spec):
    """Canonical method names, in order, without duplicates (aliases resolved)."""
    names = list(fastopt.METHODS) if spec is None else [s.strip() for s in spec.split(",")]
    chosen, seen = [], set()
    for name in names:
        if not name:
            continue
        try:
            entry = get_method(name)
        except ValueError as exc:
            parser.error(str(exc))
        # A solver module is one method whatever names it is registered under
        # (an alias listed in METHODS must not race twice); first-order rules
        # share one runner, so they are told apart by name.
        identity = entry.name if entry.kind == "first-order" else entry.run
        if identity not in seen:
            seen.add(identity)
            chosen.append(entry.name)
    if not chosen:
        parser.error("--methods lists no method")
    return chosen


def _blas_single_thread():
    """Limit BLAS to one thread if threadpoolctl is installed.

    Returns ``(limiter or None, description)``. The problems are small (a
    100 x 100 matrix, minibatches of 256 rows), where BLAS threads only add
    overhead, and on a loaded machine they make the timings erratic (a
    20000 x 50 matrix-vector product measured 10x slower with two threads).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None, "library default (install threadpoolctl to pin it to 1)"
    return threadpool_limits(limits=1, user_api="blas"), "1 (threadpoolctl)"


HEADER = """\
mode: full = full batch (deterministic); mb BxE = minibatches of B rows for E epochs.
f - f*: f* from fastopt.testing; differences below about 1e-15 |f*| are rounding.
warm-up s: a 1-iteration call made first: it includes numba's compile of what the method
  runs when the cache is cold (and with --driver compiled, of the loop for this method and
  objective). time s: the timed run after it.
evaluations: nfev = value-and-gradient calls (in minibatch mode: one per minibatch, plus one
  full-data call at the end), njev = gradient calls, nhev = Hessian-vector products.
success: the method's own verdict (gtol met, or every epoch run); stop: why it stopped
  ("maxiter": the budget ran out first; f - f* says how far it got: first-order methods
  converge linearly at best on these ill-conditioned problems)
options: the showcase's table (fastopt/_showcase.py, OPTIONS); the rest at their defaults."""


def main(argv=None):
    """Run the showcase; returns the exit status (0)."""
    parser = _parser()
    opts = parser.parse_args(argv)
    methods = _select_methods(parser, opts.methods)
    if not opts.no_plot:
        parent = os.path.dirname(os.path.abspath(opts.output))
        if not os.path.isdir(parent):
            parser.error(f"--output: directory {parent} does not exist")
    sizes = QUICK if opts.quick else FULL
    driver = opts.driver or "python"
    plot = not opts.no_plot
    if plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("note: matplotlib is not installed, so no picture "
                  "(pip install 'fastopt[plot]'); printing the tables only.\n")  # fmt: skip
            plot = False

    t_start = time.perf_counter()
    limiter, blas = _blas_single_thread()
    cases = make_cases(sizes)
    if driver == "compiled":
        about = ("compiled: numba @njit objectives (jac=True or an @njit jac), so "
                 "fastopt.minimize runs\n  the whole loop in nopython mode")  # fmt: skip
    else:
        about = ("python: plain NumPy objectives, so fastopt.minimize runs its Python loop "
                 "(cached numba\n  kernels for the updates; --driver compiled for the "
                 "nopython loop)")  # fmt: skip
    print(f"fastopt {fastopt.__version__} showcase ({'quick' if opts.quick else 'full'} run): "
          f"{len(methods)} methods on {len(cases)} problems")  # fmt: skip
    print(f"methods: {', '.join(methods)}")
    print(f"driver: {about}")
    print(f"BLAS threads: {blas}; numba {numba.__version__}, numpy {np.__version__}")
    print(HEADER)
    plotted = None
    try:
        for case in cases:
            budget = f"maxiter {case.maxiter}"
            if case.minibatch is not None:
                mb = case.minibatch
                budget = (f"stochastic methods: batch_size {mb['batch_size']}, "
                          f"{mb['epochs']} epochs; full-batch methods: "
                          f"maxiter {case.full_batch_maxiter}")  # fmt: skip
            fun = case.jitted[0] if driver == "compiled" else case.python[0]
            ran = "compiled" if _is_jitted(fun) else "python"
            local = "".join(f" (a local minimum: f = {v:.4g})" for v in case.local_minima)
            print(f"\n== {case.title}: f* = {case.f_star:.10g}{local}")
            print(f"   driver: {ran}; {budget}; gtol {COMMON['gtol']:g} (minimize's default)")
            want_path = plot and case.plot
            rows = []
            label = case.title.split(" from")[0].split(" (")[0]
            # on stderr: the tables on stdout stay clean when redirected to a file
            with Progress(label, total=len(methods), unit="methods", file=sys.stderr) as bar:
                for name in methods:
                    bar.set_note(name)
                    rows.append(run_method(name, case, driver == "compiled", want_path))
                    bar.update(len(rows))
            print(format_table(rows, case.f_star), flush=True)
            notes = _notes(rows)
            if notes:
                print("notes:")
                print("\n".join(notes))
            if want_path:
                plotted = (rows, case)
    finally:
        if limiter is not None:
            limiter.restore_original_limits()

    if plotted is not None:
        plot_paths(*plotted, opts.output)
        print(f"\nwrote {opts.output}: the methods' paths on the 2-D Rosenbrock contours")
    print(f"\ntotal wall time {time.perf_counter() - t_start:.1f} s")
    return 0
