"""First use after ``pip install``: cold (empty numba cache) and warm, per case.

Each case runs in a fresh Python process with its own empty ``NUMBA_CACHE_DIR``
and every thread pool pinned to one thread; the time is taken after
``import fastopt`` (what a user waits for at the first call).  *Warm* is a
second process on the same cache directory: what every later process pays.

    python benchmarks/coldstart.py            # every case, printed as a table
    python benchmarks/coldstart.py adam_step  # some cases
    python benchmarks/coldstart.py --events   # also list numba's compile events

The targets are issue 12's (time after import, one thread, empty cache),
judged on the process's CPU time (``wall`` is printed too): compiling is
single-threaded, so on a quiet core the two agree, and on a shared machine
CPU time leaves out the time spent waiting for a core.
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS"):  # fmt: skip
    os.environ[_var] = "1"

import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

#: name -> (code run after the clock starts, target in seconds, setup before it)
CASES = {
    "adam_step": (
        """
opt = fastopt.optimizer("adam")
x = np.ones(10)
state = opt.init(x)
state = opt.step(x, 2 * x, state)
""",
        1.0,
        "import numpy as np",
    ),
    "minimize_adam": (
        """
fastopt.minimize(rosen, np.array([-1.2, 1.0]), jac=rosen_der, method="adam",
                 options={"maxiter": 100})
""",
        1.5,
        "import numpy as np\nfrom scipy.optimize import rosen, rosen_der",
    ),
    # an @njit objective without cache=True: its loop compiles in every
    # process, so "warm" here is that per-process compile (docs/quickstart.rst)
    "minimize_adam_njit": (
        """
fastopt.minimize(rosen_fg, np.array([-1.2, 1.0]), jac=True, method="adam",
                 options={"maxiter": 100})
""",
        2.0,
        """
import numba
import numpy as np

@numba.njit
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

rosen_fg(np.zeros(2))  # the objective's own compile is not fastopt's
""",
    ),
    "minimize_lbfgs": (
        """
fastopt.minimize(rosen, np.array([-1.2, 1.0]), jac=rosen_der, method="lbfgs")
""",
        1.0,
        "import numpy as np\nfrom scipy.optimize import rosen, rosen_der",
    ),
    # importing sklearn counts: a user of fastopt.models loads the data with it
    "logreg_digits": (
        """
from sklearn.datasets import load_digits
X, y = load_digits(return_X_y=True)
fastopt.models.LogisticRegression().fit(X, y)
""",
        3.0,
        "import fastopt.models",
    ),
    "mlp_digits": (
        """
from sklearn.datasets import load_digits
X, y = load_digits(return_X_y=True)
import warnings
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # max_iter=5 does not converge, on purpose
    fastopt.models.MLPClassifier(max_iter=5).fit(X, y)
""",
        4.0,
        "import fastopt.models",
    ),
}

_EVENTS = """
import numba.core.event as _ev
_compiled = []
class _L(_ev.Listener):
    def on_start(self, event):
        pass
    def on_end(self, event):
        d = event.data["dispatcher"]
        _compiled.append(f"{d.py_func.__module__}.{d.py_func.__qualname__}")
_ev.register("numba:compile", _L())
"""

_TEMPLATE = """
import time
import fastopt
{setup}
{events}
_t0, _c0 = time.perf_counter(), time.process_time()
{code}
_dt, _dc = time.perf_counter() - _t0, time.process_time() - _c0
import json, sys
_res = {{"seconds": _dt, "cpu": _dc, "compiled": {compiled}}}
sys.stdout.write("\\n@@" + json.dumps(_res) + "\\n")
"""


def source(name, events=False):
    """The program that times case ``name`` (after ``import fastopt``)."""
    code, _, setup = CASES[name]
    return _TEMPLATE.format(
        setup=setup,
        code=code,
        events=_EVENTS if events else "",
        compiled="_compiled" if events else "None",
    )


def run_case(name, cache_dir, events=False):
    """``((wall, cpu), compiled)``: seconds of case ``name`` in a new process on
    ``cache_dir`` (wall clock and the process's CPU time), and the qualified
    names numba compiled there (``events=True``) or None."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run(
        [sys.executable, "-c", source(name, events)],
        env=env,
        cwd=cache_dir,  # not the caller's: a checkout there would shadow PYTHONPATH's fastopt
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{out.stderr}")
    line = [s for s in out.stdout.splitlines() if s.startswith("@@")][-1]
    result = json.loads(line[2:])
    return (result["seconds"], result["cpu"]), result["compiled"]


def cold_warm(name, events=False):
    """``(cold, warm, compiled)``: two processes on one new empty cache dir;
    ``cold`` and ``warm`` are ``(wall, cpu)`` seconds."""
    cache_dir = tempfile.mkdtemp(prefix="fastopt-cold-")
    try:
        cold, compiled = run_case(name, cache_dir, events)
        warm, _ = run_case(name, cache_dir)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    return cold, warm, compiled


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    events = "--events" in argv
    names = [a for a in argv if not a.startswith("--")] or list(CASES)
    print(f"{'':<24} {'cold':>15} {'warm':>15}")
    print(f"{'first use (after import)':<24} {'wall':>7} {'cpu':>7} {'wall':>7} {'cpu':>7} "
          f"{'target':>7}")  # fmt: skip
    failed = 0
    for name in names:
        (cold, cold_cpu), (warm, warm_cpu), compiled = cold_warm(name, events)
        target = CASES[name][1]
        # judged on CPU time: compiling is single-threaded, so on a quiet core
        # wall = CPU, and on a shared machine CPU time does not count the waits
        ok = cold_cpu <= target
        failed += not ok
        print(f"{name:<24} {cold:6.2f}s {cold_cpu:6.2f}s {warm:6.2f}s {warm_cpu:6.2f}s "
              f"{target:6.1f}s  {'PASS' if ok else 'FAIL'}", flush=True)  # fmt: skip
        if compiled:
            counts = {}
            for q in compiled:
                counts[q] = counts.get(q, 0) + 1
            for q, k in sorted(counts.items()):
                print(f"    compiled {k} x {q}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
