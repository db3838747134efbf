"""fastopt's second-order solvers beside scipy.optimize, with a target for each.

Run from the repository root::

    python benchmarks/mgh_compare.py            # every section (a few minutes)
    python benchmarks/mgh_compare.py --quick    # one timing repeat, a smaller grid
    python benchmarks/mgh_compare.py --section mgh      # or rosenbrock, adahessian

Sections:

``mgh``
    The 26 Moré-Garbow-Hillstrom problems of :data:`fastopt.testing.MGH_PROBLEMS`
    from their standard starts, with ``scipy.optimize.minimize`` CG, BFGS,
    L-BFGS-B and Newton-CG (exact ``hessp``) and fastopt ``scg`` (the
    finite-difference curvature, first-order information only, like CG; with
    its default Powell restarts and with the paper's ``restart="every-n"``),
    ``hessian-free`` with the exact ``hessp`` and with the Gauss-Newton product
    (``options={"gauss_newton": p.gauss_newton}``) and ``adahessian`` (exact
    ``hessp``, default options), and fastopt ``lbfgs`` when the registry has
    it.  Every method gets the same separate Python callables ``p.fun``,
    ``p.grad``, ``p.hessp`` (``jac=p.grad``, as scipy gets them) wrapped in
    call counters, so ``nfev``, ``njev``, ``nhev`` in the table are the calls
    each method really made (SCG's finite-difference curvature calls ``grad``
    alone, its trial points ``fun`` and then ``grad`` only when accepted;
    ``fastopt.minimize`` evaluates both once at ``x0`` to check them: all
    counted).  Targets: SCG solves at least as many problems as CG, with no
    more function plus gradient evaluations over the problems both solve;
    Hessian-free (exact ``hessp``) solves at least as many as Newton-CG.
``rosenbrock``
    2-D Rosenbrock from (-1.2, 1): time per solve of SCG, compiled (an
    ``@njit`` ``fun`` returning ``(f, g)`` with ``jac=True``, and an ``@njit``
    ``fun`` with an ``@njit`` ``jac``) and with Python callables
    (``scipy.optimize.rosen``/``rosen_der``), against scipy's CG; each through
    ``fastopt.minimize`` (what a user sees), through the solver's ``run`` on a
    prepared ``Objective``, and as the bare solver loop, so the table shows
    where the time goes.  Hessian-free and AdaHessian for reference.  Targets:
    compiled SCG >= 100x faster than scipy's CG per solve; Python SCG no
    slower than scipy's CG.
``adahessian``
    A quadratic of condition number 1e4 whose conditioning lies on the
    diagonal (``fastopt.testing.diagonal_quadratic(100, 1e4)``, the case a
    diagonal-Hessian method is made for): iterations until ``f - f* < 1e-6``
    for Adam over a learning-rate grid (1e-4 .. 1, 13 log-spaced values,
    ``maxiter`` 1e5) and for AdaHessian (default, then a grid over its
    learning rate and ``hessian_power``).  Target: AdaHessian (default
    options) needs fewer iterations than Adam at its best learning rate.  For
    reference, the same on ``ill_conditioned_quadratic(100, 1e4)``, whose
    random eigenbasis no diagonal preconditioner can undo (there AdaHessian
    is about Adam: no target).

Every thread pool is pinned to one thread before numpy or numba is imported;
timings are best-of-k with garbage collection off, on the thread's CPU time
by default (``--clock wall`` for wall time), and every compiled path is run
once before it is timed (compile time excluded).  The load average is
printed at the start and the end: above the number of cores, timings are
noise.  A summary of every target with PASS/FAIL ends the output.
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS"):  # fmt: skip
    os.environ[_var] = "1"

import argparse  # noqa: E402
import gc  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402
import scipy  # noqa: E402
import scipy.optimize  # noqa: E402
from numba.core.registry import CPUDispatcher  # noqa: E402
from scipy.optimize import rosen, rosen_der  # noqa: E402

import fastopt  # noqa: E402
from fastopt._objective import Objective, grad_from_fg  # noqa: E402
from fastopt.solvers import scg  # noqa: E402
from fastopt.solvers._run import ALL_STEPS, RUNNING  # noqa: E402
from fastopt.testing import (  # noqa: E402
    MGH_PROBLEMS,
    diagonal_quadratic,
    ill_conditioned_quadratic,
)

#: the gradient tolerance (inf-norm) and iteration limit of every method that has them
GTOL = 1e-5
MAXITER = 5000
#: "solved": f <= f* + tol(f*), or |f - m| <= tol(m) for a listed local
#: minimum m, with tol(t) = RTOL |t| + ATOL.  RTOL covers the six truncated
#: digits the paper gives; ATOL is what a gradient of 1e-5 leaves on the
#: problems with a singular minimum (Powell singular: f ~ |g|^(4/3)).
RTOL = 1e-4
ATOL = 1e-7


# --------------------------------------------------------------------- timing


#: the clock of every timing: "cpu" (this thread's CPU time) or "wall"
CLOCKS = {"cpu": time.thread_time, "wall": time.perf_counter}
clock = CLOCKS["cpu"]


def best_time(f, *, repeat, min_time):
    """Seconds per call of ``f()``: best of ``repeat`` runs of at least ``min_time`` s.

    Timed on :data:`clock`.  The default is the thread's CPU time: everything
    timed here runs on one thread, and on a shared machine wall time also
    counts the time the process waits for a core (on a 2-core machine at
    load 4 it doubled wall times and scattered them by 30%; CPU times stayed
    within a few percent of the unloaded wall times).
    """
    gc_was = gc.isenabled()
    gc.disable()
    try:
        k = 1
        while True:
            t0 = clock()
            for _ in range(k):
                f()
            dt = clock() - t0
            if dt >= min_time:
                break
            k = min(k * 100, max(2 * k, int(1.2 * k * min_time / max(dt, 1e-9))))
        best = dt / k
        for _ in range(repeat - 1):
            t0 = clock()
            for _ in range(k):
                f()
            best = min(best, (clock() - t0) / k)
        return best
    finally:
        if gc_was:
            gc.enable()


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"cpu: {model}; usable cores: {cores}; load average: {os.getloadavg()[0]:.2f}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, "
          f"scipy {scipy.__version__}, numba {numba.__version__}")  # fmt: skip
    return cores


# ------------------------------------------------------------------------ mgh


class Counted:
    """``fun``, ``grad``, ``hessp`` (and ``gauss_newton``) of a problem, counting calls."""

    def __init__(self, p):
        self.p = p
        self.nf = self.ng = self.nh = 0

    def fun(self, x):
        self.nf += 1
        return self.p.fun(x)

    def grad(self, x):
        self.ng += 1
        return self.p.grad(x)

    def hessp(self, x, v):
        self.nh += 1
        return self.p.hessp(x, v)

    def gauss_newton(self, x, v):
        self.nh += 1
        return self.p.gauss_newton(x, v)


def _scipy(method, hessp=False):
    def solve(c, x0):
        opts = {"maxiter": MAXITER}
        if method != "Newton-CG":
            opts["gtol"] = GTOL  # Newton-CG has none: it stops on xtol (default 1e-5)
        kw = {"hessp": c.hessp} if hessp else {}
        return scipy.optimize.minimize(c.fun, x0, jac=c.grad, method=method, options=opts, **kw)

    return solve


def _fastopt(method, product=None, **options):
    def solve(c, x0):
        opts = {"gtol": GTOL, "maxiter": MAXITER, **options}
        kw = {}
        if product == "hessp":
            kw["hessp"] = c.hessp
        elif product == "gauss_newton":
            opts["gauss_newton"] = c.gauss_newton
        return fastopt.minimize(c.fun, x0, jac=c.grad, method=method, options=opts, **kw)

    return solve


#: label -> solve(counted_problem, x0) -> OptimizeResult
MGH_METHODS = {
    "scipy CG": _scipy("CG"),
    "scipy BFGS": _scipy("BFGS"),
    "scipy L-BFGS-B": _scipy("L-BFGS-B"),
    "scipy Newton-CG": _scipy("Newton-CG", hessp=True),
    "scg": _fastopt("scg"),
    "scg every-n": _fastopt("scg", restart="every-n"),
    "hessian-free": _fastopt("hessian-free", "hessp"),
    "hessian-free GN": _fastopt("hessian-free", "gauss_newton"),
    "adahessian": _fastopt("adahessian", "hessp"),
}
if "lbfgs" in fastopt.METHODS:  # fastopt's L-BFGS, beside scipy's L-BFGS-B
    MGH_METHODS["lbfgs"] = _fastopt("lbfgs")


def solved(p, f):
    """True when ``f`` reached ``f*`` or a listed local minimum (see RTOL, ATOL)."""
    if not math.isfinite(f):
        return False
    if f <= p.f_star + RTOL * abs(p.f_star) + ATOL:
        return True
    return any(abs(f - m) <= RTOL * abs(m) + ATOL for m in p.local_minima)


def section_mgh(args, summary):
    print("\n== Moré-Garbow-Hillstrom: 26 problems, standard starts ==")
    print(f"gtol = {GTOL:g} (inf-norm of the gradient; scipy CG, BFGS, L-BFGS-B, fastopt), "
          f"maxiter = {MAXITER} (every method; Newton-CG stops on its xtol = 1e-5, having no gtol; "
          "L-BFGS-B keeps its ftol = 2.2e-9).")  # fmt: skip
    print(f"solved: f <= f* + tol(f*) or |f - m| <= tol(m) for a listed local minimum m, "
          f"tol(t) = {RTOL:g} |t| + {ATOL:g}.")  # fmt: skip
    print("nfev/njev/nhev: calls of fun/grad/hessp (or Gauss-Newton product) counted by "
          "wrappers; time: best of "
          f"{args.repeat}, uncounted callables, ms per solve.")  # fmt: skip
    rows = []
    head = (f"{'problem':24s} {'n':>3s} {'method':16s} {'succ':>4s} {'solved':>6s} {'f':>13s} "
            f"{'nit':>6s} {'nfev':>6s} {'njev':>6s} {'nhev':>6s} {'time ms':>9s}")  # fmt: skip
    print(head)
    print("-" * len(head))
    for name, p in MGH_PROBLEMS.items():
        for label, solve in MGH_METHODS.items():
            c = Counted(p)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = solve(c, p.x0.copy())
                raw = Counted(p)  # same callables; its counts are not used
                x0 = p.x0
                t = best_time(lambda solve=solve, raw=raw, x0=x0: solve(raw, x0.copy()),
                              repeat=args.repeat, min_time=0.0)  # fmt: skip
            f = float(res.fun)
            ok = solved(p, f)
            rows.append({"problem": name, "method": label, "solved": ok,
                         "success": bool(res.success), "f": f, "nit": int(res.get("nit", 0)),
                         "nfev": c.nf, "njev": c.ng, "nhev": c.nh, "time": t})  # fmt: skip
            print(f"{name:24s} {p.n:3d} {label:16s} {'yes' if res.success else 'no':>4s} "
                  f"{'yes' if ok else 'NO':>6s} {f:13.6g} {int(res.get('nit', 0)):6d} "
                  f"{c.nf:6d} {c.ng:6d} {c.nh:6d} {t * 1e3:9.3f}")  # fmt: skip
        print()

    print(f"Summary per method ({len(MGH_PROBLEMS)} problems):")
    print(f"{'method':16s} {'solved':>6s} {'success':>7s} {'f+g (all)':>10s} "
          f"{'f+g+h (all)':>11s} {'time ms (all)':>13s}")  # fmt: skip
    by = {label: [r for r in rows if r["method"] == label] for label in MGH_METHODS}
    for label, rs in by.items():
        fg = sum(r["nfev"] + r["njev"] for r in rs)
        fgh = fg + sum(r["nhev"] for r in rs)
        print(f"{label:16s} {sum(r['solved'] for r in rs):6d} {sum(r['success'] for r in rs):7d} "
              f"{fg:10d} {fgh:11d} {sum(r['time'] for r in rs) * 1e3:13.1f}")  # fmt: skip

    def both(a, b):
        ra = {r["problem"]: r for r in by[a]}
        rb = {r["problem"]: r for r in by[b]}
        common = [k for k in ra if ra[k]["solved"] and rb[k]["solved"]]
        tot = {m: sum(r[k]["nfev"] + r[k]["njev"] for k in common) for m, r in ((a, ra), (b, rb))}
        only = {m: sorted(k for k in r if r[k]["solved"] and not o[k]["solved"])
                for m, r, o in ((a, ra, rb), (b, rb, ra))}  # fmt: skip
        return common, tot, only

    print("\nPairs (f+g = function plus gradient evaluations over the problems both solved):")
    for a, b in (("scg", "scipy CG"), ("scg every-n", "scipy CG"), ("scg", "scg every-n"),
                 ("hessian-free", "scipy Newton-CG"), ("hessian-free GN", "scipy Newton-CG"),
                 ("scg", "scipy L-BFGS-B"),
                 *((("lbfgs", "scipy L-BFGS-B"),) if "lbfgs" in by else ())):  # fmt: skip
        common, tot, only = both(a, b)
        print(
            f"  {a} vs {b}: both solved {len(common)}; f+g {tot[a]} vs {tot[b]}; "
            f"only {a}: {', '.join(only[a]) or '-'}; only {b}: {', '.join(only[b]) or '-'}"
        )

    n_cg = sum(r["solved"] for r in by["scipy CG"])
    for label, what in (("scg", 'SCG (default: restart="powell")'),
                        ("scg every-n", "SCG restart=\"every-n\" (Møller's paper)")):  # fmt: skip
        n_scg = sum(r["solved"] for r in by[label])
        common, tot, _ = both(label, "scipy CG")
        summary.append((f"MGH: {what} solves >= as many as scipy CG", f"{n_scg} vs {n_cg}",
                        n_scg >= n_cg))  # fmt: skip
        summary.append((f"MGH: {what} f+g <= scipy CG's (problems both solved)",
                        f"{tot[label]} vs {tot['scipy CG']} over {len(common)}",
                        tot[label] <= tot["scipy CG"]))  # fmt: skip
    n_hf = sum(r["solved"] for r in by["hessian-free"])
    n_ncg = sum(r["solved"] for r in by["scipy Newton-CG"])
    summary.append(("MGH: Hessian-free solves >= as many as Newton-CG", f"{n_hf} vs {n_ncg}",
                    n_hf >= n_ncg))  # fmt: skip


# ----------------------------------------------------------------- rosenbrock


@numba.njit
def rosen_fg_jit(x):
    """2-D Rosenbrock value and gradient (``jac=True``), compiled."""
    a = x[0]
    t = x[1] - a * a
    g = np.empty(2)
    g[0] = -400.0 * a * t - 2.0 * (1.0 - a)
    g[1] = 200.0 * t
    return 100.0 * t * t + (1.0 - a) * (1.0 - a), g


@numba.njit
def rosen_jit(x):
    a = x[0]
    t = x[1] - a * a
    return 100.0 * t * t + (1.0 - a) * (1.0 - a)


@numba.njit
def rosen_der_jit(x):
    a = x[0]
    t = x[1] - a * a
    g = np.empty(2)
    g[0] = -400.0 * a * t - 2.0 * (1.0 - a)
    g[1] = 200.0 * t
    return g


@numba.njit
def rosen_fun_only_jit(x):
    return rosen_fg_jit(x)[0]


def _py_rosen_fg(x):
    return rosen(x), rosen_der(x)


def _scg_bare(fg, fun=None, grad=None):
    """The SCG loop alone, from prepared state (what ``scg.run`` calls).

    ``fun`` None: the trial points take ``fg`` and ``grad`` is ``fg(x)[1]``
    (``jac=True``); else ``fun`` and ``grad`` separately (a separate ``jac``).
    """
    x0 = np.array([-1.2, 1.0])
    f0, g0 = fg(x0)
    f0, g0 = float(f0), np.asarray(g0, dtype=np.float64)
    compiled = isinstance(fg, CPUDispatcher)
    gfev = 0
    if fun is None:
        grad, gfev = grad_from_fg(fg, compiled), 1
    if compiled:
        loop, first = scg._LOOP.bind(fun, fg, grad, None)
    else:
        loop, first = scg._scg_loop, (fun, fg, grad, None)

    def run():
        x, g = x0.copy(), g0.copy()
        p = -g
        fs = np.array([f0, 1e-6, 0.0, 0.0, 0.0, float(p @ p)])
        ns = np.array([0, 1, 1, 0, 0, 0, 1, RUNNING], dtype=np.int64)
        # the arguments scg.run passes for the default options (Møller, Powell's
        # restart, no hessp)
        rest = ((), x, g, p, np.empty(2), fs, ns, ALL_STEPS, 1000, 2**62, GTOL, 0.0, 0.0, 1e-4,
                False, True, gfev)  # fmt: skip
        status = loop(*first, *rest)
        return status, x, ns

    return run


def section_rosenbrock(args, summary):
    print("\n== 2-D Rosenbrock from (-1.2, 1), gtol 1e-5: time per solve ==")
    x0 = np.array([-1.2, 1.0])
    rep, mt = args.repeat_fast, args.min_time
    rows = []

    def add(label, f, layer):
        r = f()  # warm-up (compiles on first use)
        t = best_time(f, repeat=rep, min_time=mt)
        if isinstance(r, tuple):  # bare loop
            nit, nfev, njev = int(r[2][0]), int(r[2][1]), int(r[2][2])
        elif isinstance(r, dict):
            nit, nfev, njev = r["nit"], r["nfev"], r["njev"]
        else:
            nit, nfev, njev = r.nit, r.nfev, r.njev
        rows.append((label, layer, t, nit, nfev, njev))
        return t

    t_cg = add("scipy CG", lambda: scipy.optimize.minimize(rosen, x0, jac=rosen_der, method="CG"),
               "scipy.optimize.minimize")  # fmt: skip
    add("scipy BFGS", lambda: scipy.optimize.minimize(rosen, x0, jac=rosen_der, method="BFGS"),
        "scipy.optimize.minimize")  # fmt: skip
    t_jit = add("scg njit fg, jac=True",
                lambda: fastopt.minimize(rosen_fg_jit, x0, jac=True, method="scg"),
                "fastopt.minimize")  # fmt: skip
    t_jit2 = add("scg njit fun + njit jac",
                 lambda: fastopt.minimize(rosen_jit, x0, jac=rosen_der_jit, method="scg"),
                 "fastopt.minimize")  # fmt: skip
    opts = scg.Options()

    def obj(fg, fun, compiled, grad=None):
        return Objective(x0=x0.copy(), fun=fun, fg=fg, grad=grad, hessp=None, args=(),
                         compiled=compiled)  # fmt: skip

    t_run = add("scg njit fg", lambda: scg.run(obj(rosen_fg_jit, rosen_fun_only_jit, True), opts),
                "scg.run(Objective)")  # fmt: skip
    t_bare = add("scg njit fg", _scg_bare(rosen_fg_jit), "bare loop")
    t_min0 = best_time(
        lambda: fastopt.minimize(rosen_fg_jit, x0, jac=True, method="scg", options={"maxiter": 0}),
        repeat=rep,
        min_time=mt,
    )
    t_run0 = best_time(lambda: scg.run(Objective(x0=x0.copy(), fun=rosen_fun_only_jit,
                                                 fg=rosen_fg_jit, hessp=None, args=(),
                                                 compiled=True, maxiter=0), opts),
                       repeat=rep, min_time=mt)  # fmt: skip
    t_py = add("scg rosen, rosen_der",
               lambda: fastopt.minimize(rosen, x0, jac=rosen_der, method="scg"),
               "fastopt.minimize")  # fmt: skip
    add("scg rosen, rosen_der", lambda: scg.run(obj(_py_rosen_fg, rosen, False, rosen_der), opts),
        "scg.run(Objective)")  # fmt: skip
    add("scg rosen, rosen_der", _scg_bare(_py_rosen_fg, rosen, rosen_der), "bare loop")
    fg_t = best_time(lambda: (rosen(x0), rosen_der(x0)), repeat=rep, min_time=mt)
    for method, kw in (
        ("scg", {"options": {"restart": "every-n"}}),
        ("hessian-free", {}),
        ("adahessian", {"options": {"learning_rate": 1.0, "maxiter": 20000}}),
    ):
        method = method + (" every-n" if kw.get("options", {}).get("restart") else "")
        add(f"{method} njit fg", lambda m=method, kw=kw: fastopt.minimize(rosen_fg_jit, x0,
            jac=True, method=m.split()[0], **kw), "fastopt.minimize")  # fmt: skip
        add(f"{method} rosen, rosen_der", lambda m=method, kw=kw: fastopt.minimize(
            rosen, x0, jac=rosen_der, method=m.split()[0], **kw), "fastopt.minimize")  # fmt: skip

    print(f"best of {rep}, each repeat >= {mt * 1e3:.0f} ms; ratio = scipy CG time / this time")
    print(f"{'solver':28s} {'measured through':26s} {'time us':>10s} {'ratio':>8s} "
          f"{'nit':>6s} {'nfev':>6s} {'njev':>6s}")  # fmt: skip
    for label, layer, t, nit, nfev, njev in rows:
        print(f"{label:28s} {layer:26s} {t * 1e6:10.2f} {t_cg / t:8.2f} {nit:6d} {nfev:6d} "
              f"{njev:6d}")  # fmt: skip
    bare = next(r for r in rows if r[1] == "bare loop")
    py = next(r for r in rows if r[0] == "scg rosen, rosen_der")
    print(f"\nwhere the compiled SCG solve's {t_jit * 1e6:.1f} us go:")
    print(f"  fastopt.minimize beyond scg.run: {(t_jit - t_run) * 1e6:6.1f} us "
          f"(minimize with maxiter=0: {t_min0 * 1e6:.1f} us, scg.run with maxiter=0: "
          f"{t_run0 * 1e6:.1f} us)")  # fmt: skip
    print(f"  scg.run beyond the loop:         {(t_run - t_bare) * 1e6:6.1f} us")
    print(f"  the loop ({bare[3]} accepted steps, {bare[5]} fg): {t_bare * 1e6:6.1f} us")
    print(f"Python callables: one rosen + rosen_der pair costs {fg_t * 1e6:.1f} us; "
          f"scipy CG spends {78 * fg_t * 1e6 / 1e3:.2f} ms in its ~78 pairs (its 78 f + 77 g), "
          f"SCG (separate rosen, rosen_der) in its {py[4]} f + {py[5]} g.")  # fmt: skip
    summary.append(("Rosenbrock: compiled SCG (njit fg, jac=True) >= 100x scipy CG",
                    f"{t_cg / t_jit:.1f}x ({t_jit * 1e6:.1f} us vs {t_cg * 1e3:.3f} ms)",
                    t_cg / t_jit >= 100))  # fmt: skip
    summary.append(
        (
            "Rosenbrock: compiled SCG (njit fun + njit jac) >= 100x scipy CG",
            f"{t_cg / t_jit2:.1f}x",
            t_cg / t_jit2 >= 100,
        )
    )
    summary.append(("Rosenbrock: Python SCG no slower than scipy CG",
                    f"{t_cg / t_py:.2f}x ({t_py * 1e3:.3f} ms vs {t_cg * 1e3:.3f} ms)",
                    t_py <= t_cg))  # fmt: skip


# ----------------------------------------------------------------- adahessian


def _gaps(p, method, options, hessp, maxiter):
    """``f - f*`` after each of ``maxiter`` iterations (fewer if the run stopped)."""
    gaps = np.full(maxiter, np.nan)

    def callback(intermediate_result):
        gaps[intermediate_result.nit - 1] = intermediate_result.fun - p.f_star

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fastopt.minimize(p.fun, p.x0.copy(), jac=p.grad, hessp=hessp, method=method,
                               callback=callback,
                               options={"maxiter": maxiter, "gtol": 0.0, **options})  # fmt: skip
    return gaps[: res.nit]


def _reached(gaps, target, maxiter):
    """``(first, stays, last)``: the first iteration with ``f - f* < target``; the
    first from which it stays below through ``maxiter`` (None: never, or the
    run stopped early on a non-finite value); the last gap."""
    below = gaps < target
    first = int(np.argmax(below)) + 1 if below.any() else None
    stays = None
    if gaps.shape[0] == maxiter and below[-1]:
        above = np.flatnonzero(~below)
        stays = int(above[-1]) + 2 if above.size else 1
    return first, stays, (float(gaps[-1]) if gaps.shape[0] else math.nan)


def _adam_vs_adahessian(p, args, target, maxiter):
    """Print Adam's learning-rate grid and AdaHessian's; return the best of each.

    Returns ``{metric: (adam, adahessian_default, adahessian_best)}`` for the
    metrics "first" and "stays", each entry ``(iterations or None, label)``.
    """
    print(f"  {'method':40s} {'first < tol':>12s} {'stays < tol':>12s} {'last f - f*':>12s}")

    def run(label, method, options, hessp):
        first, stays, last = _reached(_gaps(p, method, options, hessp, maxiter), target, maxiter)
        print(f"  {label:40s} {'-' if first is None else first:>12} "
              f"{'-' if stays is None else stays:>12} {last:12.3e}")  # fmt: skip
        return {"first": first, "stays": stays}

    adam = {}
    for lr in np.logspace(-4, 0, 7 if args.quick else 13):
        adam[f"adam lr={lr:.3g}"] = run(f"adam lr={lr:.3g}", "adam",
                                        {"learning_rate": float(lr)}, None)  # fmt: skip
    default = run("adahessian (defaults: lr 0.15, k=1)", "adahessian", {}, p.hessp)
    ada = {}
    for k in (1.0, 0.5):
        for lr in np.logspace(-3, 0, 4 if args.quick else 7):
            label = f"adahessian lr={lr:.3g} hessian_power={k:g}"
            ada[label] = run(label, "adahessian", {"learning_rate": float(lr),
                                                   "hessian_power": k}, p.hessp)  # fmt: skip

    def best(runs, metric):
        done = [(r[metric], label) for label, r in runs.items() if r[metric] is not None]
        return min(done) if done else (None, "none reached")

    out = {}
    for metric in ("first", "stays"):
        out[metric] = (best(adam, metric), (default[metric], "defaults"), best(ada, metric))
        a, d, t = out[metric]
        print(
            f"  {metric:5s}: Adam best {a[0]} ({a[1]}); AdaHessian defaults {d[0]}; "
            f"AdaHessian best {t[0]} ({t[1]})"
        )
    return out


def _fewer(a, b):
    """True when ``a`` iterations (None: never) is fewer than ``b``."""
    return a is not None and (b is None or a < b)


def section_adahessian(args, summary):
    n, cond, target, maxiter = 100, 1e4, 1e-6, 100_000
    q = diagonal_quadratic(n, cond)
    print(f"\n== AdaHessian vs Adam: diagonal_quadratic({n}, {cond:g}) (the conditioning on the "
          f"diagonal, {q.notes.split('; ')[-1][:-1]}), f - f* < {target:g}, {maxiter} iterations "
          "each ==")  # fmt: skip
    print("  first: the first iteration below; stays: the iteration from which it stays below to"
          " the last; -: never.  AdaHessian: one gradient and one Hessian-vector product per"
          " iteration, Adam: one gradient.")  # fmt: skip
    out = _adam_vs_adahessian(q, args, target, maxiter)
    for metric, what in (("first", "first reaches"), ("stays", "reaches and stays below")):
        a, d, t = out[metric]
        summary.append((f"cond-1e4 diagonal quadratic, {what} f-f* < {target:g}: AdaHessian "
                        "(defaults) in fewer iterations than Adam (best lr)",
                        f"{d[0]} vs {a[0]} ({a[1]})", _fewer(d[0], a[0])))  # fmt: skip
    p = ill_conditioned_quadratic(n, cond)
    print(f"\n== for reference (no target): ill_conditioned_quadratic({n}, {cond:g}), a random "
          "eigenbasis: diag(A) is about the same in every coordinate, so no diagonal "
          "preconditioner can undo the conditioning ==")  # fmt: skip
    out = _adam_vs_adahessian(p, args, target, maxiter)
    a, d, t = out["first"]
    summary.append(("(reference, no target) random-eigenbasis cond-1e4 quadratic, first "
                    "reaches: AdaHessian (best of its grid) vs Adam (best lr)",
                    f"{t[0]} ({t[1]}) vs {a[0]} ({a[1]})", None))  # fmt: skip


# ----------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one timing repeat, smaller grids")
    ap.add_argument("--repeat", type=int, default=None, help="timing repeats per MGH solve (3)")
    ap.add_argument("--section", choices=["mgh", "rosenbrock", "adahessian"], action="append",
                    help="run only these sections (repeatable)")  # fmt: skip
    ap.add_argument(
        "--min-time",
        type=float,
        default=0.05,
        help="seconds per timing repeat (Rosenbrock section)",
    )
    ap.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="cpu",
        help="cpu: the thread's CPU time (default; robust to a busy machine); wall",
    )
    args = ap.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    args.repeat = args.repeat or (1 if args.quick else 3)
    args.repeat_fast = 3 if args.quick else 15
    cores = machine()
    print(f"clock: {args.clock} ({'thread CPU time' if args.clock == 'cpu' else 'wall time'})")
    load0 = os.getloadavg()[0]
    summary = []
    sections = args.section or ["mgh", "rosenbrock", "adahessian"]
    for name in sections:
        {"mgh": section_mgh, "rosenbrock": section_rosenbrock,
         "adahessian": section_adahessian}[name](args, summary)  # fmt: skip
    load1 = os.getloadavg()[0]
    print(
        f"\nload average: {load0:.2f} at the start, {load1:.2f} at the end ({cores} cores)"
        + ("  -- busy machine: timings are noisy" if max(load0, load1) > cores else "")
    )
    print("\n== Targets ==")
    for what, value, ok in summary:
        print(f"  {'info' if ok is None else 'PASS' if ok else 'FAIL'}  {what}: {value}")


if __name__ == "__main__":
    main()
