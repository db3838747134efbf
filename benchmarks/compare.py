"""fastopt against the hardware and the alternatives, with a target for each.

Run from the repository root (``--quick`` for a smoke run of a minute or two)::

    python benchmarks/compare.py [--quick] [--section NAME ...]

Every thread pool is pinned to one thread before numpy, numba or torch is
imported (environment variables, then threadpoolctl if it is installed, then
``torch.set_num_threads(1)``): the comparisons are per core.  Only the
parallel-kernel section runs in a subprocess of its own with
``NUMBA_NUM_THREADS=2``, and the first-call section in fresh processes.

Timings are best-of-k: each of k repeats runs the statement enough times to
last ``--min-time`` seconds, and the fastest repeat counts (noise only ever
adds time).  Sections, in order: the machine; Adam against the copy
bandwidth; every rule against Adam; torch.optim.Adam (fused, foreach); a
vectorised NumPy Adam; ``opt.step`` overhead at n=10; the compiled and the
Python driver per iteration; scipy.optimize.minimize on Rosenbrock; serial vs
parallel kernel; import and first-minimize time.  A summary of every target
with PASS/FAIL ends the output.  See ``benchmarks/README.md``.
"""

import os
import sys

_PARALLEL_WORKER = "--parallel-worker" in sys.argv
# threads of the parallel kernel: 2 (these machines), or --threads N
_THREADS = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv else "2"
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS"):  # fmt: skip
    os.environ[_var] = "1"
if _PARALLEL_WORKER:
    os.environ["NUMBA_NUM_THREADS"] = _THREADS

import argparse  # noqa: E402
import ast  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402
import scipy  # noqa: E402
import scipy.optimize  # noqa: E402
from scipy.optimize import rosen, rosen_der  # noqa: E402

import fastopt  # noqa: E402
from fastopt.kernels import cpu  # noqa: E402

try:
    from threadpoolctl import threadpool_info, threadpool_limits
except ImportError:  # optional: the environment variables above already pin the pools
    threadpool_info = threadpool_limits = None
else:
    _LIMITS = threadpool_limits(limits=1)  # kept for the whole run

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import step_variants  # noqa: E402 (it pins the pools to 1 thread too)

if _PARALLEL_WORKER:
    os.environ["NUMBA_NUM_THREADS"] = _THREADS

HERE = os.path.abspath(__file__)
ROOT = os.path.dirname(os.path.dirname(HERE))
WORDS_ADAM = 7  # x, g, m, v read; x, m, v written
WORDS_COPY = 2  # src read, dst written


# --------------------------------------------------------------------- timing


def best_times(loops, *, repeat, min_time):
    """Seconds per iteration of each ``loop(k)`` (which runs k iterations): best of ``repeat``.

    Each loop's ``k`` is scaled until one repeat lasts ``min_time``.  The loops
    are interleaved, every repeat running each of them once, so a change of
    machine load hits all of them alike: their ratios are what is compared.
    Garbage collection is off while timing.
    """
    gc_was = gc.isenabled()
    gc.disable()
    try:
        ks, best = [], []
        for loop in loops:
            k = 1
            while True:
                t0 = time.perf_counter()
                loop(k)
                dt = time.perf_counter() - t0
                if dt >= min_time or k >= 1 << 26:
                    break
                k = min(k * 100, max(2 * k, int(1.2 * k * min_time / max(dt, 1e-9))))
            ks.append(k)
            best.append(dt / k)
        for _ in range(repeat - 1):
            for j, loop in enumerate(loops):
                t0 = time.perf_counter()
                loop(ks[j])
                best[j] = min(best[j], (time.perf_counter() - t0) / ks[j])
        return best
    finally:
        if gc_was:
            gc.enable()


def best_time(loop, *, repeat, min_time):
    """Seconds per iteration of one ``loop(k)``: see :func:`best_times`."""
    return best_times([loop], repeat=repeat, min_time=min_time)[0]


def calls(f):
    """``loop(k)`` that calls ``f()`` k times."""

    def loop(k):
        for _ in range(k):
            f()

    return loop


def kernel_loop(kern, kid, x, g, S, h, c):
    """``loop(k)`` that calls the step kernel ``kern`` k times (update 1, lr 1e-3)."""

    def loop(k):
        for _ in range(k):
            kern(kid, x, g, S, h, 1, 1e-3, 0.0, c)

    return loop


def copy_loop(n, dtype):
    """``loop(k)``: k times ``np.copyto`` of ``n`` elements of ``dtype``."""
    src = np.random.default_rng(1).standard_normal(n).astype(dtype)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # first touch
    return calls(lambda: np.copyto(dst, src))


def fmt_time(t):
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if abs(t) >= scale or unit == "ns":
            return f"{t / scale:.3g} {unit}"
    return f"{t:.3g} s"


def table(headers, rows):
    """Print a plain text table (columns right-aligned except the first)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(r, widths, strict=True)))  # fmt: skip

    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    for r in cells[1:]:
        print(line(r))
    print()


def section(title):
    print()
    print(f"== {title}   [load average {os.getloadavg()[0]:.2f}]")
    print()


class Targets:
    """The targets met or missed, for the summary."""

    def __init__(self):
        self.rows = []

    def check(self, name, value, op, limit, shown, limit_shown):
        ok = value >= limit if op == ">=" else value <= limit
        if isinstance(value, float) and math.isnan(value):
            ok = False
        self.rows.append((name, shown, f"{op} {limit_shown}", "PASS" if ok else "FAIL"))
        return "PASS" if ok else "FAIL"

    def skip(self, name, why):
        self.rows.append((name, why, "", "SKIP"))


# -------------------------------------------------------------------- machine


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def source_state():
    """The commit checked out and whether fastopt/ differs from it (read-only git)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(["git", "--no-optional-locks", "status", "--porcelain", "--",
                                "fastopt"], cwd=ROOT, capture_output=True, text=True,
                               check=True).stdout.splitlines()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    return f"commit {head}" + (f" + uncommitted changes to {len(dirty)} path(s) in fastopt/"
                               if dirty else "")  # fmt: skip


def print_machine(torch):
    section("machine")
    try:
        ncpu = len(os.sched_getaffinity(0))
    except AttributeError:
        ncpu = os.cpu_count()
    rows = [
        ("cpu", cpu_model()),
        ("cpus usable", ncpu),
        ("load average (1, 5, 15 min)", ", ".join(f"{x:.2f}" for x in os.getloadavg())),
        ("python", platform.python_version()),
        ("numpy", np.__version__),
        ("scipy", scipy.__version__),
        ("numba", numba.__version__),
        ("torch", torch.__version__ if torch is not None else "not installed"),
        ("fastopt", f"{fastopt.__version__} from {os.path.dirname(fastopt.__file__)}"),
        ("source", source_state()),
        ("NUMBA_NUM_THREADS / numba.get_num_threads()",
         f"{os.environ['NUMBA_NUM_THREADS']} / {numba.get_num_threads()}"),
        ("torch threads", torch.get_num_threads() if torch is not None else "-"),
    ]  # fmt: skip
    if threadpool_info is not None:
        pools = ", ".join(f"{p['internal_api']}={p['num_threads']}" for p in threadpool_info())
        rows.append(("threadpoolctl pools", pools or "none loaded"))
    else:
        rows.append(("threadpoolctl", "not installed (environment variables only)"))
    table(["", "value"], rows)


# ------------------------------------------------------------------ problems


def adam_problem(n, dtype, seed=0, method="adam", **options):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n).astype(dtype)
    g = rng.standard_normal(n).astype(dtype)
    opt = fastopt.optimizer(method, **options)
    state = opt.init(x)
    state.slots[...] += 0  # touch the calloc'd pages before timing
    return opt, x, g, state


def step_loop(opt, x, g, state, value=None):
    step = opt.step

    def loop(k):
        s = state
        for _ in range(k):
            s = step(x, g, s, value)

    loop(1)  # compile / load from the cache
    return loop


@numba.njit
def rosen_fg(x):
    """Rosenbrock's function and gradient, compiled (the user's ``@njit`` fun)."""
    f = 0.0
    g = np.zeros_like(x)
    for i in range(x.shape[0] - 1):
        a = x[i + 1] - x[i] * x[i]
        b = 1.0 - x[i]
        f += 100.0 * a * a + b * b
        g[i] += -400.0 * x[i] * a - 2.0 * b
        g[i + 1] += 200.0 * a
    return f, g


@numba.njit
def _call_fg(fg, x, k):
    s = 0.0
    for _ in range(k):
        f, g = fg(x)
        s += f + g[0]
    return s


X0 = np.array([-1.2, 1.0])


# ---------------------------------------------------------------- sections


def bandwidth(cfg, targets):
    section("Adam step vs copy bandwidth (np.copyto: 2 words per element; Adam: 7)")
    print("fraction = (7 n itemsize / t_adam) / (2 n itemsize / t_copy).  Where the copy's")
    print("destination is read into the cache before it is written (write-allocate: no")
    print("streaming stores), the copy really moves 3 words and a fraction up to 1.5 means")
    print("Adam runs at the memory bandwidth; in cache (n <= 1e5) neither is memory-bound.")
    print()
    rows = []
    for dtype in (np.float32, np.float64):
        for n in (10**4, 10**5, 10**6, 10**7):
            isz = np.dtype(dtype).itemsize
            opt, x, g, state = adam_problem(n, dtype)
            t_copy, t_adam = best_times([copy_loop(n, dtype), step_loop(opt, x, g, state)],
                                        **cfg.timing)  # fmt: skip
            bw_copy = WORDS_COPY * n * isz / t_copy
            bw_adam = WORDS_ADAM * n * isz / t_adam
            frac = bw_adam / bw_copy
            verdict = ""
            if n == 10**7 and dtype is np.float64:
                verdict = targets.check("Adam n=1e7 float64: fraction of copy bandwidth",
                                        frac, ">=", 0.9, f"{frac:.2f}", "0.9")  # fmt: skip
            rows.append((np.dtype(dtype).name, f"{n:.0e}", fmt_time(t_copy),
                         f"{bw_copy / 1e9:.1f}", fmt_time(t_adam), f"{bw_adam / 1e9:.1f}",
                         f"{t_adam / n * 1e9:.2f}", f"{frac:.2f}", verdict))  # fmt: skip
            del x, g, state
    table(["dtype", "n", "copy", "copy GB/s", "adam step", "adam GB/s", "ns/elem",
           "fraction", "target >= 0.9"], rows)  # fmt: skip


def rules(cfg, targets):
    n = 10**7
    section(f"every rule and variant vs Adam, n={n:.0e} float64 (time per element)")
    print("Each rule is timed interleaved with Adam and with a copy (same load for all three);")
    print("words = 3 + 2 * slots (x, g and every slot read; x and every slot written).")
    print()
    adam = step_loop(*adam_problem(n, np.float64))
    copy = copy_loop(n, np.float64)
    rows = []
    for label, (method, options) in step_variants().items():
        if label == "adam":
            t_copy, t_adam = best_times([copy, adam], **cfg.timing)
            t = t_adam
        else:
            opt, x, g, state = adam_problem(n, np.float64, method=method, **options)
            value = 1.0 if opt.needs_value else None
            rule = step_loop(opt, x, g, state, value)
            t_copy, t_adam, t = best_times([copy, adam, rule], **cfg.timing)
            del x, g, rule
        slots = len(fastopt.optimizer(method, **options).slot_names)
        words = 3 + 2 * slots
        frac = (words * n * 8 / t) / (WORDS_COPY * n * 8 / t_copy)
        ratio = t / t_adam
        verdict = ""
        if label != "adam":
            verdict = targets.check(f"{label} / adam time per element (n=1e7 float64)", ratio,
                                    "<=", 1.3, f"{ratio:.2f}", "1.3")  # fmt: skip
        rows.append((label, slots, fmt_time(t), f"{t / n * 1e9:.2f}", fmt_time(t_adam),
                     f"{ratio:.2f}", f"{frac:.2f}", verdict))  # fmt: skip
    table(["rule", "slots", "step", "ns/elem", "adam alongside", "vs adam",
           "copy bw fraction", "target <= 1.3"], rows)  # fmt: skip


def torch_adam(cfg, targets, torch):
    section("torch.optim.Adam (1 thread) vs fastopt adam, time per step")
    if torch is None:
        print("torch is not installed: skipped")
        targets.skip("torch comparisons", "torch not installed")
        return
    rows = []
    for dtype in (np.float32, np.float64):
        for n in (10**4, 10**7):
            opt, x, g, state = adam_problem(n, dtype)
            loops, res = {"fastopt": step_loop(opt, x, g, state)}, {}
            for kind in ("fused", "foreach"):
                p = torch.nn.Parameter(torch.from_numpy(x.copy()))
                p.grad = torch.from_numpy(g.copy())
                try:
                    topt = torch.optim.Adam([p], lr=1e-3, **{kind: True})
                    topt.step()  # creates the state
                except (RuntimeError, ValueError) as e:
                    res[kind] = (math.nan, f"n/a ({type(e).__name__})")
                    continue
                loops[kind] = calls(topt.step)
            times = dict(zip(loops, best_times(list(loops.values()), **cfg.timing), strict=True))
            t_fast = times.pop("fastopt")
            res.update({kind: (t, fmt_time(t)) for kind, t in times.items()})
            del loops
            name = np.dtype(dtype).name
            t_fused = res["fused"][0]
            speedup = t_fused / t_fast
            if n == 10**7:
                verdict = targets.check(f"torch fused / fastopt adam, n=1e7 {name}", speedup,
                                        ">=", 1.0, f"{speedup:.2f}x", "1.0x")  # fmt: skip
            else:
                verdict = targets.check(f"torch fused / fastopt adam, n=1e4 {name}", speedup,
                                        ">=", 5.0, f"{speedup:.2f}x", "5x")  # fmt: skip
            rows.append((name, f"{n:.0e}", fmt_time(t_fast), res["fused"][1],
                         res["foreach"][1], f"{speedup:.2f}x",
                         f"{res['foreach'][0] / t_fast:.2f}x", verdict))  # fmt: skip
            del x, g, state
    table(["dtype", "n", "fastopt", "torch fused", "torch foreach", "fused/fastopt",
           "foreach/fastopt", "target"], rows)  # fmt: skip
    print("targets: no slower than fused at n=1e7 (>= 1x); >= 5x faster than fused at n=1e4")


class NumpyAdam:
    """Adam in NumPy, in place: preallocated temporaries, ``out=`` everywhere.

    The operations are fastopt's, in fastopt's order (``m / (sqrt(v) / c1 + eps)``).
    With ``block`` the update runs in chunks of ``block`` elements so the
    temporaries stay in cache and each array is streamed from memory once.
    """

    def __init__(self, n, dtype, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, block=None):
        self.lr, self.b1, self.b2, self.eps = lr, b1, b2, eps
        self.m = np.zeros(n, dtype)
        self.v = np.zeros(n, dtype)
        self.block = block
        self.tmp = np.empty(min(n, block or n), dtype)
        self.t = 0
        self.dtype = np.dtype(dtype).type

    def step(self, x, g):
        self.t += 1
        dt = self.dtype
        c0 = dt(self.lr / (1.0 - self.b1**self.t))
        c1 = dt(1.0 / math.sqrt(1.0 - self.b2**self.t))  # multiplied, as fastopt does
        b1, a1 = dt(self.b1), dt(1 - self.b1)
        b2, a2 = dt(self.b2), dt(1 - self.b2)
        eps = dt(self.eps)
        if self.block is None:
            self._update(x, g, self.m, self.v, self.tmp, c0, c1, b1, a1, b2, a2, eps)
            return
        n, b = x.shape[0], self.block
        for i in range(0, n, b):
            j = min(i + b, n)
            self._update(x[i:j], g[i:j], self.m[i:j], self.v[i:j], self.tmp[: j - i],
                         c0, c1, b1, a1, b2, a2, eps)  # fmt: skip

    @staticmethod
    def _update(x, g, m, v, tmp, c0, c1, b1, a1, b2, a2, eps):
        m *= b1
        np.multiply(g, a1, out=tmp)
        m += tmp
        v *= b2
        np.multiply(g, a2, out=tmp)
        tmp *= g
        v += tmp
        np.sqrt(v, out=tmp)
        tmp *= c1
        tmp += eps
        np.divide(m, tmp, out=tmp)
        tmp *= c0
        x -= tmp


def numpy_adam(cfg, targets):
    section("vectorised NumPy Adam (in-place ufuncs with out=) vs fastopt adam, per step")
    blocks = (None, 4096, 16384, 65536)
    # check the NumPy step against fastopt's before timing it
    opt, x, g, state = adam_problem(1000, np.float64)
    xn = x.copy()
    ref = NumpyAdam(1000, np.float64, block=256)
    for _ in range(3):
        state = opt.step(x, g, state)
        ref.step(xn, g)
    err = float(np.max(np.abs(xn - x) / np.abs(x)))
    print(f"NumPy vs fastopt after 3 steps: max relative difference {err:.1e}")
    print()
    rows = []
    for dtype in (np.float32, np.float64):
        for n in (10**4, 10**7):
            opt, x, g, state = adam_problem(n, dtype)
            loops = {"fastopt": step_loop(opt, x, g, state)}
            for b in blocks:
                if b is not None and b >= n:
                    continue
                na = NumpyAdam(n, dtype, block=b)
                xn = x.copy()
                na.step(xn, g)
                loops[b] = calls(lambda na=na, xn=xn, g=g: na.step(xn, g))
            times = dict(zip(loops, best_times(list(loops.values()), **cfg.timing), strict=True))
            t_fast = times.pop("fastopt")
            del loops
            best_b = min(times, key=times.get)
            rows.append((np.dtype(dtype).name, f"{n:.0e}", fmt_time(t_fast),
                         fmt_time(times[None]), fmt_time(times[best_b]),
                         "whole" if best_b is None else str(best_b),
                         f"{times[best_b] / t_fast:.1f}x"))  # fmt: skip
            del x, g, state
    table(["dtype", "n", "fastopt", "numpy", "numpy best", "best block", "numpy best/fastopt"],
          rows)  # fmt: skip


def overhead(cfg, targets):
    section("opt.step overhead per call, n = 10")
    rows = []
    for dtype in (np.float64, np.float32):
        opt, x, g, state = adam_problem(10, dtype)
        c = np.zeros(cpu.N_COEFFS, dtype)
        kid, h, S = opt.kid, opt.h, state.slots
        t, t_kernel, t_empty = best_times([step_loop(opt, x, g, state),
                                           kernel_loop(cpu.step, kid, x, g, S, h, c),
                                           calls(lambda: None)], **cfg.timing)  # fmt: skip
        name = np.dtype(dtype).name
        verdict = targets.check(f"opt.step overhead, n=10 {name}", t, "<=", 2e-6,
                                fmt_time(t), "2 us")  # fmt: skip
        rows.append((name, fmt_time(t), fmt_time(t_kernel), fmt_time(t_empty), verdict))
    table(["dtype", "opt.step", "cpu.step (kernel call)", "empty call", "target < 2 us"], rows)
    print("cpu.step: the numba dispatcher alone (9 arguments typed and unboxed per call);")
    print("opt.step adds the Python around it (schedule, coefficient buffer, new OptState).")


def per_iteration(run, n1, n2, user, m, repeat):
    """Seconds per driver iteration, and per call of the user's ``fun``+``jac``.

    The driver's from the difference of two run lengths ``run(n1)``,
    ``run(n2)`` (the fixed costs of ``minimize`` cancel); the user's from
    ``user(m)``, which calls them ``m`` times.  The three are interleaved,
    best of ``repeat`` each.
    """
    gc_was = gc.isenabled()
    gc.disable()
    try:
        t1 = t2 = tu = math.inf
        for _ in range(repeat):
            t1 = min(t1, _timed(run, n1))
            t2 = min(t2, _timed(run, n2))
            t0 = time.perf_counter()
            user(m)
            tu = min(tu, (time.perf_counter() - t0) / m)
        return (t2 - t1) / (n2 - n1), tu
    finally:
        if gc_was:
            gc.enable()


def _timed(run, n):
    t0 = time.perf_counter()
    res = run(n)
    dt = time.perf_counter() - t0
    if res.nit != n:
        raise RuntimeError(f"expected {n} iterations, got {res.nit} ({res.message})")
    return dt


def drivers(cfg, targets):
    section("drivers: Adam on 2-D Rosenbrock, time per iteration")
    opts = {"learning_rate": 1e-3, "gtol": 0.0}

    def run_njit(k):
        return fastopt.minimize(rosen_fg, X0, jac=True, method="adam",
                                options=dict(opts, maxiter=k))  # fmt: skip

    def run_py(k):
        return fastopt.minimize(rosen, X0, jac=rosen_der, method="adam",
                                options=dict(opts, maxiter=k))  # fmt: skip

    run_njit(10)  # compile the loop for rosen_fg (not cached; see first-call time)
    run_py(10)
    _call_fg(rosen_fg, X0, 10)
    x = X0.copy()
    r = cfg.repeat
    n1, n2 = (10_000, 200_000) if cfg.quick else (10_000, 2_000_000)
    t_njit, t_fg_njit = per_iteration(run_njit, n1, n2, lambda k: _call_fg(rosen_fg, X0, k),
                                      n2 // 2, r)  # fmt: skip
    n1, n2 = (100, 2_000) if cfg.quick else (200, 20_000)
    t_py, t_user_py = per_iteration(run_py, n1, n2, calls(lambda: (rosen(x), rosen_der(x))),
                                    n2 // 4, r)  # fmt: skip
    v1 = targets.check("compiled driver: ns per iteration (Adam, Rosenbrock 2-D)", t_njit,
                       "<=", 50e-9, fmt_time(t_njit), "50 ns")  # fmt: skip
    v2 = targets.check("Python driver: time per iteration beyond fun+jac", t_py - t_user_py,
                       "<=", 3e-6, fmt_time(t_py - t_user_py), "3 us")  # fmt: skip
    table(["driver", "per iteration", "user's fun+jac", "driver beyond fun+jac", "target"], [
        ("compiled (@njit fun, jac=True)", fmt_time(t_njit), fmt_time(t_fg_njit),
         fmt_time(t_njit - t_fg_njit), f"total < 50 ns: {v1}"),
        ("python (rosen, rosen_der)", fmt_time(t_py), fmt_time(t_user_py),
         fmt_time(t_py - t_user_py), f"beyond < 3 us: {v2}"),
    ])  # fmt: skip
    print("per iteration = (t(N2 iterations) - t(N1)) / (N2 - N1) of whole minimize calls")
    print("(gtol=0: every run takes exactly maxiter iterations); the user's fun+jac is")
    print("timed alone, interleaved with them: a compiled loop over rosen_fg, and a Python")
    print("loop over rosen, rosen_der.")


def scipy_compare(cfg, targets):
    section("scipy.optimize.minimize vs fastopt on 2-D Rosenbrock from (-1.2, 1), per solve")
    rows = []
    cases = [
        ("scipy CG", lambda: scipy.optimize.minimize(rosen, X0, jac=rosen_der, method="CG")),
        ("scipy BFGS", lambda: scipy.optimize.minimize(rosen, X0, jac=rosen_der, method="BFGS")),
        ("scipy L-BFGS-B",
         lambda: scipy.optimize.minimize(rosen, X0, jac=rosen_der, method="L-BFGS-B")),
        ("fastopt adam, python driver",
         lambda: fastopt.minimize(rosen, X0, jac=rosen_der, method="adam",
                                  options={"learning_rate": 0.05, "maxiter": 20_000})),
        ("fastopt adam, compiled driver",
         lambda: fastopt.minimize(rosen_fg, X0, jac=True, method="adam",
                                  options={"learning_rate": 0.05, "maxiter": 20_000})),
    ]  # fmt: skip
    timing = dict(cfg.timing, min_time=min(cfg.timing["min_time"], 0.05))
    for name, solve in cases:
        res = solve()
        t = best_time(calls(solve), **timing)
        rows.append((name, fmt_time(t), res.nit, res.nfev, f"{res.fun:.2e}",
                     "yes" if res.success else "no"))  # fmt: skip
    table(["solver", "time per solve", "nit", "nfev", "final f", "success"], rows)
    print("fastopt adam: learning_rate=0.05, gtol=1e-5 (the README example); scipy: defaults")


def call_cost(cfg, targets):
    section("fixed cost of a minimize call: maxiter=1, @njit objective (issue 11)")
    rows = []
    cases = [
        ("scipy L-BFGS-B, maxiter=1",
         lambda: scipy.optimize.minimize(rosen, X0, jac=rosen_der, method="L-BFGS-B",
                                         options={"maxiter": 1})),
    ] + [
        (f"fastopt {m}, maxiter=1",
         lambda m=m: fastopt.minimize(rosen_fg, X0, jac=True, method=m, options={"maxiter": 1}))
        for m in ("adam", "lbfgs", "scg")
    ]  # fmt: skip
    timing = dict(cfg.timing, min_time=min(cfg.timing["min_time"], 0.05))
    times = {}
    for name, solve in cases:
        solve()
        times[name] = best_time(calls(solve), **timing)
        rows.append((name, fmt_time(times[name])))
    t = times["fastopt adam, maxiter=1"]
    v = targets.check("minimize fixed cost (@njit objective, adam, maxiter=1)", t, "<=", 5e-6,
                      fmt_time(t), "5 us")  # fmt: skip
    table(["call", "time per call"], rows)
    print(f"target: fastopt adam <= 5 us: {v}")


def parallel(cfg, targets):
    section(f"parallel vs serial step kernel (Adam, NUMBA_NUM_THREADS={_THREADS}, "
            "in a subprocess)")  # fmt: skip
    cmd = [sys.executable, HERE, "--parallel-worker", "--threads", _THREADS]
    cmd += ["--quick"] if cfg.quick else []
    env = dict(os.environ, NUMBA_NUM_THREADS=_THREADS)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        print(proc.stderr)
        targets.skip("parallel crossover", "worker failed")
        return
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    print(
        f"threading layer: {out['layer']}, threads: {out['threads']}, "
        f"PARALLEL_MIN_SIZE = {cpu.PARALLEL_MIN_SIZE} "
        f"(2**{cpu.PARALLEL_MIN_SIZE.bit_length() - 1})"
    )
    print()
    rows = []
    crossover = {}
    for dtype in ("float32", "float64"):
        res = [r for r in out["rows"] if r["dtype"] == dtype]
        for r in res:
            rows.append((dtype, f"{r['n']:.0e}", fmt_time(r["serial"]), fmt_time(r["parallel"]),
                         f"{r['serial'] / r['parallel']:.2f}x"))  # fmt: skip
        # the smallest n from which the parallel kernel wins at every larger n
        cross = None
        for r in reversed(res):
            if r["parallel"] < r["serial"]:
                cross = r["n"]
            else:
                break
        crossover[dtype] = cross
    table(["dtype", "n", "serial", "parallel", "speedup"], rows)
    for dtype, cross in crossover.items():
        if cross is None:
            print(f"{dtype}: the parallel kernel never wins up to n=1e7")
        else:
            print(f"{dtype}: crossover at n ~ {cross:.0e} (parallel faster from there on)")


def parallel_worker(quick):
    """Runs in the subprocess with NUMBA_NUM_THREADS=--threads: prints one JSON line."""
    sizes = [10**5, 10**6, 10**7] if quick else [
        10**4, 2 * 10**4, 5 * 10**4, 10**5, 2 * 10**5, 5 * 10**5, 10**6, 2 * 10**6, 5 * 10**6,
        10**7]  # fmt: skip
    timing = {"repeat": 3, "min_time": 0.01} if quick else {"repeat": 7, "min_time": 0.05}
    rows = []
    for dtype in (np.float32, np.float64):
        for n in sizes:
            opt, x, g, state = adam_problem(n, dtype)
            S, h, kid = state.slots, opt.h, opt.kid
            c = np.zeros(cpu.N_COEFFS, dtype)
            loops = []
            for kern in (cpu.step, cpu.step_parallel):
                kern(kid, x, g, S, h, 1, 1e-3, 0.0, c)  # load from the cache
                loops.append(kernel_loop(kern, kid, x, g, S, h, c))
            t_serial, t_parallel = best_times(loops, **timing)
            rows.append({"n": n, "dtype": np.dtype(dtype).name, "serial": t_serial,
                         "parallel": t_parallel})  # fmt: skip
    print(json.dumps({"layer": numba.threading_layer(), "threads": numba.get_num_threads(),
                      "rows": rows}))  # fmt: skip


# The @njit objective of the first-call cases; ``{options}``: numba.njit's.
ROSEN_FG_SOURCE = """
import numba
import numpy as np


@numba.njit{options}
def rosen_fg(x):
    f = 0.0
    g = np.zeros_like(x)
    for i in range(x.shape[0] - 1):
        a = x[i + 1] - x[i] * x[i]
        b = 1.0 - x[i]
        f += 100.0 * a * a + b * b
        g[i] += -400.0 * x[i] * a - 2.0 * b
        g[i + 1] += 200.0 * a
    return f, g
"""
ADAM_100 = """
fastopt.minimize(rosen_fg, np.array([-1.2, 1.0]), jac=True, method="adam",
                 options={"learning_rate": 0.05, "maxiter": 100})
"""
# (user code, first call): the user code runs between ``import fastopt`` and
# the first ``minimize`` (imports, and the compile of the @njit objective on
# its first call), so that the minimize column is fastopt's own first call.
FIRST_CALL = {
    "import": ("", ""),
    "python": (
        "from scipy.optimize import rosen, rosen_der\n",
        ADAM_100.replace("rosen_fg,", "rosen,").replace("jac=True", "jac=rosen_der"),
    ),
    "njit": (
        ROSEN_FG_SOURCE.format(options="") + "\nrosen_fg(np.array([-1.2, 1.0]))\n",
        ADAM_100,
    ),  # fmt: skip
    # the same objective with cache=True, imported from a file (written by
    # first_call into a temporary folder): the loop built on it is cached too
    "njit_cached": (
        """
import sys
sys.path.insert(0, {moddir!r})
from rosen_cached import rosen_fg
rosen_fg(np.array([-1.2, 1.0]))
""",
        ADAM_100,
    ),
}
_CHILD = """
import time
t0 = time.perf_counter()
import numpy as np
import fastopt
t1 = time.perf_counter()
t_imported = time.time()
{user}
t2 = time.perf_counter()
{call}
t3 = time.perf_counter()
print(repr((t1 - t0, t2 - t1, t3 - t2, t_imported, time.time())))
"""


def first_call(cfg, targets):
    section("first call in a fresh process, warm numba cache (subprocess per run)")
    runs = 2 if cfg.quick else 5
    rows = []
    moddir = tempfile.mkdtemp(prefix="fastopt-firstcall-")
    with open(os.path.join(moddir, "rosen_cached.py"), "w") as fh:
        fh.write(ROSEN_FG_SOURCE.format(options="(cache=True)"))
    for case, (user, call) in FIRST_CALL.items():
        code = _CHILD.format(user=user.format(moddir=moddir) if case == "njit_cached" else user,
                             call=call)  # fmt: skip
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, cwd=ROOT)
        results = []
        for _ in range(runs):
            start = time.time()
            out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                 text=True, cwd=ROOT).stdout  # fmt: skip
            t_import, t_user, t_call, t_imported, t_end = ast.literal_eval(
                out.strip().splitlines()[-1]
            )
            results.append((t_import, t_user, t_call, t_imported - start, t_end - start))
        cols = list(zip(*results, strict=True))
        cell = [f"{min(c):.3f} ({statistics.median(c):.3f})" for c in cols]
        if case == "import":
            best = min(cols[0])
            verdict = targets.check("import fastopt (fresh process)", best, "<=", 0.6,
                                    f"{best:.3f} s", "0.6 s")  # fmt: skip
            rows.append(("import fastopt", cell[0], "-", "-", cell[3], "-",
                         f"import < 0.6 s: {verdict}"))  # fmt: skip
        else:
            label = {"python": "first minimize, Python callables",
                     "njit": "first minimize, @njit fun (compiles its loop)",
                     "njit_cached": "first minimize, @njit(cache=True) fun from a file "
                                    "(loads its cached loop)"}[case]  # fmt: skip
            best = min(cols[4])
            verdict = targets.check(f"{label}: done after process start", best, "<=", 1.0,
                                    f"{best:.3f} s", "1.0 s")  # fmt: skip
            rows.append((label, cell[0], cell[1], cell[2], cell[3], cell[4],
                         f"done < 1.0 s: {verdict}"))  # fmt: skip
    table([f"case (seconds: best (median) of {runs})", "import fastopt", "user code",
           "minimize", "imported, from start", "done, from start", "target"], rows)  # fmt: skip
    print("'from start': wall time since the parent launched the process (interpreter start-up")
    print("included).  user code: `from scipy.optimize import rosen, rosen_der`, or defining")
    print("and calling (compiling) the @njit rosen_fg.  Each minimize is 100 Adam steps on")
    print("Rosenbrock 2-D; its first call loads the cached kernels (and numba's typing and")
    print("lowering registries), or with an @njit fun compiles the loop that calls it, or")
    print("with an @njit(cache=True) fun from a file loads that loop from numba's cache.")


#: an MLP's 8 arrays, 1,050,192 float32 in all (issue 13's structured-params target)
MODEL_SHAPES = {"W1": (512, 1024), "b1": (1024,), "W2": (1024, 448), "b2": (448,),
                "W3": (448, 140), "b3": (140,), "W4": (140, 20), "b4": (20,)}  # fmt: skip


def structured(cfg, targets, torch):
    n = sum(int(np.prod(s)) for s in MODEL_SHAPES.values())
    section(f"structured params: Adam on 8 arrays ({n:,} float32), time per step")
    print("flat: one 1-D array; dict: 8 separate arrays (one kernel call each);")
    print("packed: fastopt.pack (views of one buffer: one kernel call), gradient flat;")
    print("torch fused: torch.optim.Adam(fused=True) on the same 8 tensors.")
    print()
    rng = np.random.default_rng(0)
    arrays = {k: rng.standard_normal(s).astype(np.float32) for k, s in MODEL_SHAPES.items()}
    grads = {k: rng.standard_normal(s).astype(np.float32) for k, s in MODEL_SHAPES.items()}
    gflat = np.concatenate([g.ravel() for g in grads.values()])
    opt = fastopt.optimizer("adam")
    flat = np.concatenate([a.ravel() for a in arrays.values()])
    sep = {k: a.copy() for k, a in arrays.items()}
    packed = fastopt.pack(arrays)
    loops = {
        "flat": step_loop(opt, flat, gflat, opt.init(flat)),
        "dict": step_loop(opt, sep, grads, opt.init(sep)),
        "packed": step_loop(opt, packed, gflat, opt.init(packed)),
    }
    if torch is not None:
        ps = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in arrays.values()]
        for p, g in zip(ps, grads.values(), strict=True):
            p.grad = torch.from_numpy(g.copy())
        topt = torch.optim.Adam(ps, lr=1e-3, fused=True)
        topt.step()
        loops["torch fused"] = calls(topt.step)
    times = dict(zip(loops, best_times(list(loops.values()), **cfg.timing), strict=True))
    t_flat = times["flat"]
    r_dict, r_packed = times["dict"] / t_flat, times["packed"] / t_flat
    rows = [("flat", fmt_time(t_flat), "1.00", ""),
            ("dict of 8", fmt_time(times["dict"]), f"{r_dict:.2f}",
             targets.check("structured dict / flat step (8 arrays, 1.05e6 f32)", r_dict, "<=",
                           1.2, f"{r_dict:.2f}", "1.2")),
            ("packed", fmt_time(times["packed"]), f"{r_packed:.2f}",
             targets.check("packed / flat step (8 arrays, 1.05e6 f32)", r_packed, "<=", 1.05,
                           f"{r_packed:.2f}", "1.05"))]  # fmt: skip
    if "torch fused" in times:
        r = times["torch fused"] / times["dict"]
        rows.append(("torch fused", fmt_time(times["torch fused"]),
                     f"{times['torch fused'] / t_flat:.2f}",
                     targets.check("torch fused / fastopt dict step (8 arrays)", r, ">=", 1.0,
                                   f"{r:.2f}x", "1.0x")))  # fmt: skip
    else:
        targets.skip("torch fused / fastopt dict step (8 arrays)", "torch not installed")
    table(["params", "step", "vs flat", "target"], rows)
    print("targets: dict <= 1.2x flat and faster than torch fused; packed <= 1.05x flat")


def summary(targets):
    section("summary of targets")
    table(["target", "measured", "target", "result"], targets.rows)
    n_fail = sum(r[3] == "FAIL" for r in targets.rows)
    print(f"{len(targets.rows) - n_fail} of {len(targets.rows)} targets met")


class Config:
    def __init__(self, quick, repeat, min_time):
        self.quick = quick
        self.repeat = repeat
        self.timing = {"repeat": repeat, "min_time": min_time}


#: the sections, in the order they run: name -> run(cfg, targets, torch)
SECTIONS = {
    "bandwidth": lambda cfg, targets, torch: bandwidth(cfg, targets),
    "rules": lambda cfg, targets, torch: rules(cfg, targets),
    "torch_adam": torch_adam,
    "numpy_adam": lambda cfg, targets, torch: numpy_adam(cfg, targets),
    "overhead": lambda cfg, targets, torch: overhead(cfg, targets),
    "drivers": lambda cfg, targets, torch: drivers(cfg, targets),
    "scipy": lambda cfg, targets, torch: scipy_compare(cfg, targets),
    "call_cost": lambda cfg, targets, torch: call_cost(cfg, targets),
    "parallel": lambda cfg, targets, torch: parallel(cfg, targets),
    "first_call": lambda cfg, targets, torch: first_call(cfg, targets),
    "structured": structured,
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats: a smoke run")
    parser.add_argument("--repeat", type=int, default=None, help="best of this many (default 7)")
    parser.add_argument("--min-time", type=float, default=None,
                        help="seconds per repeat (default 0.05; --quick 0.01)")  # fmt: skip
    parser.add_argument("--parallel-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--threads", default="2", help="threads of the parallel kernel in its section (default 2)"
    )
    parser.add_argument("--section", action="append", choices=list(SECTIONS),
                        help="run only this section (repeatable)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.parallel_worker:
        parallel_worker(args.quick)
        return 0
    repeat = args.repeat or (3 if args.quick else 7)
    min_time = args.min_time or (0.01 if args.quick else 0.05)
    cfg = Config(args.quick, repeat, min_time)

    try:
        import torch
    except ImportError:
        torch = None
    else:
        torch.set_num_threads(1)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # only settable before torch's first parallel work
            pass

    t0 = time.perf_counter()
    print("fastopt benchmarks/compare.py" + (" --quick" if cfg.quick else ""))
    print(f"best of {repeat} repeats of >= {min_time} s each")
    print_machine(torch)
    targets = Targets()
    for name, run in SECTIONS.items():
        if args.section is None or name in args.section:
            run(cfg, targets, torch)
    summary(targets)
    print(
        f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}; "
        f"total {time.perf_counter() - t0:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
