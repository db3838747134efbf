"""Why bounded Meyer is a coin toss: rounding, and scipy's own BLAS kernel.

Run from the repository root::

    python benchmarks/meyer_rounding.py            # both parts
    python benchmarks/meyer_rounding.py --part starts   # or kernels

The Meyer problem (Moré-Garbow-Hillstrom no. 10) in the box of
``benchmarks/many_compare.py --section bounded`` (``x0 -+ (|x0| + 1)/2``) is
the one problem of that section whose outcome is decided by rounding: both
scipy's L-BFGS-B and fastopt's ``lbfgs`` reach a plateau at ``f ~ 1.32e5``
within about 25 steps, and whether the ftol test stops a run there or it
creeps on for hundreds of steps (to ``f`` in the thousands) depends on the
last bits of the iterates.

``starts``
    Both solvers from ``x0 (1 + s u)``, ``u`` uniform in ``[-1, 1]^3``
    (seed 0), 12 starts for each ``s`` in 1e-15, 1e-12, 1e-9, in this process
    (the inherited ``OPENBLAS_CORETYPE``, or the CPU's pick): how often each
    goes on from the plateau (final ``f < 1e5``), and the range of the final
    ``f`` of those that do.
``kernels``
    One run of each from ``x0`` per OpenBLAS kernel family
    (``OPENBLAS_CORETYPE``, each in a fresh process; a family this CPU cannot
    run is reported as such, ``(unset)`` is the CPU's own pick).  scipy's
    L-BFGS-B calls BLAS/LAPACK in its inner steps (``dnrm2`` for ``y'y`` and
    ``s's``, ``dpotrf``/``dtrtrs`` for its middle and reduced matrices,
    ``ddot``), and OpenBLAS picks a kernel per CPU at load time: the Haswell
    kernels' ``dnrm2`` accumulates in x87 80-bit precision and their
    ``dpotrf`` updates with fused multiply-adds, others round differently.
    fastopt's kernels sum in a fixed order and call no BLAS.  Two objectives:
    the suite's (``np.dot``, itself a BLAS call), and the same function summed
    in a fixed order in Python (no BLAS), which isolates the solvers.
"""

import argparse
import json
import os
import subprocess
import sys
import warnings

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import scipy.optimize as so  # noqa: E402

import fastopt  # noqa: E402
from fastopt.testing import MGH_PROBLEMS  # noqa: E402
from fastopt.testing.mgh import _meyer_jac, _meyer_res  # noqa: E402

PLATEAU = 1e5
SCALES = (1e-15, 1e-12, 1e-9)
STARTS = 12
CORETYPES = ("Haswell", "SkylakeX", "Zen", "Sandybridge", "Nehalem", "Prescott")

_P = MGH_PROBLEMS["meyer"]
X0 = np.array(_P.x0, dtype=float)
BOUNDS = [(v - 0.5 * (abs(v) + 1.0), v + 0.5 * (abs(v) + 1.0)) for v in X0]


def fixed_order_fun(x):
    """Meyer's ``sum r_i^2`` summed left to right (no BLAS)."""
    s = 0.0
    for v in _meyer_res(x):
        s += v * v
    return s


def fixed_order_grad(x):
    """Meyer's gradient ``2 J' r``, each entry summed left to right (no BLAS)."""
    r = _meyer_res(x)
    jac = _meyer_jac(x)
    g = np.empty(3)
    for j in range(3):
        s = 0.0
        for i in range(r.shape[0]):
            s += jac[i, j] * r[i]
        g[j] = 2.0 * s
    return g


def solve_both(x0, fun, grad):
    """``(f, nfev)`` of scipy's L-BFGS-B and of fastopt's ``lbfgs`` (default options)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rs = so.minimize(fun, x0, jac=grad, method="L-BFGS-B", bounds=BOUNDS)
        rf = fastopt.minimize(fun, x0, jac=grad, method="lbfgs", bounds=BOUNDS)
    return (float(rs.fun), int(rs.nfev)), (float(rf.fun), int(rf.nfev))


def part_starts():
    print("== perturbed starts: x0 (1 + s u), 12 per s; 'on' = went on from the plateau ==")
    rng = np.random.default_rng(0)
    totals = {"scipy": 0, "lbfgs": 0}
    for s in SCALES:
        finals = {"scipy": [], "lbfgs": []}
        for _ in range(STARTS):
            x0 = X0 * (1.0 + s * rng.uniform(-1.0, 1.0, X0.shape))
            (fs, _), (ff, _) = solve_both(x0, _P.fun, _P.grad)
            finals["scipy"].append(fs)
            finals["lbfgs"].append(ff)
        cells = []
        for name, fs in finals.items():
            on = [f for f in fs if f < PLATEAU]
            totals[name] += len(on)
            rng_txt = f"{min(on):.0f}-{max(on):.0f}" if on else "-"
            cells.append(f"{name} on {len(on):2d}/{STARTS} (f {rng_txt})")
        print(f"s = {s:.0e}: " + "; ".join(cells))
    n = len(SCALES) * STARTS
    print(f"in all: scipy went on in {totals['scipy']}/{n}, lbfgs in {totals['lbfgs']}/{n}")


def worker():
    """One process's line for ``part_kernels``: JSON of both objectives' results."""
    from threadpoolctl import threadpool_info

    arch = sorted({d.get("architecture", "?") for d in threadpool_info()})
    out = {"arch": arch}
    for label, fun, grad in (("suite", _P.fun, _P.grad),
                             ("fixed", fixed_order_fun, fixed_order_grad)):  # fmt: skip
        out[label] = solve_both(X0, fun, grad)
    print(json.dumps(out))


def part_kernels():
    print("\n== from x0, per OpenBLAS kernel (f and evaluations; 'suite' objective uses np.dot) ==")
    print(f"{'OPENBLAS_CORETYPE':18s} {'loaded':14s} {'scipy (suite)':>17s} {'lbfgs (suite)':>17s}"
          f" {'scipy (no BLAS)':>17s} {'lbfgs (no BLAS)':>17s}")  # fmt: skip
    for core in (None, *CORETYPES):
        env = dict(os.environ)
        env.pop("OPENBLAS_CORETYPE", None)
        if core is not None:
            env["OPENBLAS_CORETYPE"] = core
        proc = subprocess.run([sys.executable, __file__, "--worker"], env=env,
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        name = core or "(unset)"
        if proc.returncode != 0 or not proc.stdout.strip():
            print(f"{name:18s} not runnable on this CPU (exit {proc.returncode})")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        cells = [f"{f:10.2f} {n:4d}" for f, n in (*r["suite"], *r["fixed"])]
        print(f"{name:18s} {','.join(r['arch']):14s} " + " ".join(f"{c:>17s}" for c in cells))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("starts", "kernels"))
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker()
        return
    print(f"scipy {__import__('scipy').__version__}, numpy {np.__version__}, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}, "
          f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    if args.part in (None, "starts"):
        part_starts()
    if args.part in (None, "kernels"):
        part_kernels()


if __name__ == "__main__":
    main()
