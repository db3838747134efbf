"""Real-GPU figures for fastopt's CUDA kernels (issue #4): run on a machine with a GPU.

Prints, in one run on one device:

- the device-to-device copy bandwidth (the memory roofline a step can reach),
- the Adam step at n = 1e6, 1e7, 1e8 (float32 and float64) through the optimizer
  API and through the bare kernel launch, as effective bandwidth (Adam moves
  7 words per element: x, m, v read and written, g read) and as a ratio to the copy,
- torch.optim.Adam with ``fused=True`` and ``foreach=True`` on the same tensors,
- every kernel variant's time per element relative to Adam at n = 1e7,
- zero-copy round trips with CuPy and torch arrays, and a ``minimize`` on the device.

Timing: CUDA events around ``reps`` back-to-back launches after warm-up;
the best of 5 such blocks.  Usage::

    python benchmarks/gpu_compare.py [--quick]
"""

# ruff: noqa: B023  (each closure is timed inside the iteration that defines it)
import argparse
import math
import sys
import time
import traceback

import numpy as np

# one optimizer per kernel variant (method, options)
VARIANTS = [
    ("sgd", {}), ("momentum", {"momentum": 0.9}), ("nag", {}),
    ("rprop", {"variant": "irprop-"}), ("rprop", {"variant": "rprop-"}),
    ("rprop", {"variant": "rprop+"}), ("rprop", {"variant": "irprop+"}),
    ("adagrad", {}), ("rmsprop", {}), ("rmsprop", {"centered": True}),
    ("rmsprop", {"momentum": 0.5}), ("rmsprop", {"centered": True, "momentum": 0.5}),
    ("adadelta", {}), ("adam", {}), ("adam", {"amsgrad": True}), ("adamax", {}),
]  # fmt: skip


def section(name):
    print(f"\n== {name}", flush=True)


def best_of(fn, reps, sync, blocks=5):
    """Seconds per call: best over ``blocks`` blocks of ``reps`` calls."""
    fn()
    sync()
    best = math.inf
    for _ in range(blocks):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        sync()
        best = min(best, (time.perf_counter() - t0) / reps)
    return best


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--sizes", type=int, nargs="*", help="override the sizes (smoke tests)")
    a = p.parse_args(argv)

    import numba
    from numba import cuda

    import fastopt
    from fastopt.kernels import cuda as fk
    from fastopt.rules import KERNEL_TABLE

    section("versions")
    print("python", sys.version.split()[0], "numpy", np.__version__, "numba", numba.__version__)
    try:
        import numba_cuda

        print("numba-cuda", getattr(numba_cuda, "__version__", "?"))
    except ImportError:
        print("numba-cuda not importable as numba_cuda")
    dev = cuda.get_current_device()
    print("device", getattr(dev, "name", "?"), "SMs", getattr(dev, "MULTIPROCESSOR_COUNT", "?"))
    try:
        import torch

        print("torch", torch.__version__, "cuda", torch.cuda.is_available())
    except ImportError:
        torch = None
    try:
        import cupy

        print("cupy", cupy.__version__)
    except ImportError:
        cupy = None

    sync = cuda.synchronize
    sizes = [10**6, 10**7] if a.quick else [10**6, 10**7, 10**8]
    if a.sizes:
        sizes = a.sizes

    section("copy bandwidth (device to device, bytes read + written)")
    copy_bw = {}
    for dtype in (np.float32, np.float64):
        for n in sizes:
            src = cuda.to_device(np.ones(n, dtype))
            dst = cuda.device_array(n, dtype)
            s = best_of(lambda: dst.copy_to_device(src), 20, sync)
            bw = 2 * n * np.dtype(dtype).itemsize / s
            copy_bw[dtype, n] = bw
            print(f"{np.dtype(dtype).name:8s} n={n:>10d} {s * 1e6:9.1f} us  {bw / 1e9:7.1f} GB/s")

    section("Adam step: fastopt (API and bare launch) vs torch fused/foreach")
    print("columns: time per step; effective GB/s (7 words/element); ratio to the copy's GB/s")
    adam_t = {}
    for dtype in (np.float32, np.float64):
        for n in sizes:
            rng = np.random.default_rng(0)
            x = cuda.to_device(rng.standard_normal(n).astype(dtype))
            g = cuda.to_device(rng.standard_normal(n).astype(dtype))
            opt = fastopt.optimizer("adam", learning_rate=1e-3)
            st = [opt.init(x)]

            def api():
                st[0] = opt.step(x, g, st[0])

            s_api = best_of(api, 20, sync)
            S = st[0].slots
            kid = opt.kid
            c = tuple(fk.cpu.coefficients(kid, opt.h, 5, 1e-3, 0.0, x.dtype))
            blocks, threads = fk._grid(n)
            kern = fk.step_kernel(kid)
            s_k = best_of(lambda: kern[blocks, threads](x, g, S, c), 20, sync)
            adam_t[dtype, n] = s_k
            words = 7 * n * np.dtype(dtype).itemsize
            line = (
                f"{np.dtype(dtype).name:8s} n={n:>10d}  api {s_api * 1e6:9.1f} us  "
                f"kernel {s_k * 1e6:9.1f} us  {words / s_k / 1e9:7.1f} GB/s  "
                f"{words / s_k / copy_bw[dtype, n]:5.2f}x copy"
            )
            if torch is not None and torch.cuda.is_available():
                tdt = {np.float32: torch.float32, np.float64: torch.float64}[dtype]
                for kind in ("fused", "foreach"):
                    pt = torch.randn(n, dtype=tdt, device="cuda", requires_grad=True)
                    pt.grad = torch.randn(n, dtype=tdt, device="cuda")
                    o = torch.optim.Adam([pt], lr=1e-3, **{kind: True})
                    s_t = best_of(o.step, 20, torch.cuda.synchronize)
                    line += f"  torch {kind} {s_t * 1e6:9.1f} us ({s_t / s_api:5.2f}x api)"
            print(line, flush=True)

    n = 10**7 if 10**7 in sizes else sizes[-1]
    section(f"every kernel variant vs Adam, time per element, n={n} (bare launch)")
    for dtype in (np.float32, np.float64):
        rng = np.random.default_rng(0)
        x = cuda.to_device(rng.standard_normal(n).astype(dtype))
        g = cuda.to_device(rng.standard_normal(n).astype(dtype))
        for method, kw in VARIANTS:
            opt = fastopt.optimizer(method, **kw)
            kid = opt.kid
            name = KERNEL_TABLE[kid][0]
            nslots = len(opt.slot_names)
            S = cuda.to_device(np.full((nslots, n), 0.01, dtype))
            c = tuple(fk.cpu.coefficients(kid, opt.h, 5, 1e-3, 0.0, x.dtype))
            blocks, threads = fk._grid(n)
            kern = fk.step_kernel(kid)
            s = best_of(lambda: kern[blocks, threads](x, g, S, c), 20, sync)
            print(
                f"{np.dtype(dtype).name:8s} {name:28s} slots={nslots} {s * 1e6:8.1f} us "
                f"{s / adam_t[dtype, n]:5.2f}x adam",
                flush=True,
            )

    section("zero-copy round trips")
    for lib in ("cupy", "torch"):
        try:
            if lib == "cupy" and cupy is not None:
                xa = cupy.asarray(np.linspace(-1, 1, 1000))
                ga = 2 * xa
            elif lib == "torch" and torch is not None and torch.cuda.is_available():
                xa = torch.linspace(-1, 1, 1000, dtype=torch.float64, device="cuda")
                ga = 2 * xa
            else:
                print(lib, "not installed (or no CUDA build)")
                continue
            before = np.asarray(cuda.as_cuda_array(xa).copy_to_host())
            opt = fastopt.optimizer("adam", learning_rate=0.1)
            st = opt.init(xa)
            st = opt.step(xa, ga, st)
            after = cuda.as_cuda_array(xa).copy_to_host()
            host = before.copy()
            hst = opt.init(host)
            opt.step(host, 2 * before, hst)
            print(
                f"{lib}: x updated in place on the device: {not np.array_equal(before, after)}; "
                f"max |device - host| = {np.max(np.abs(after - host)):.3e}"
            )
        except Exception:
            traceback.print_exc()

    section(f"minimize on the device (CuPy objective), quadratic n={sizes[0]}")
    if cupy is not None:
        try:
            nn = sizes[0]
            d = cupy.asarray(np.linspace(1, 10, nn))

            def fg(x):
                r = d * x
                return float(0.5 * cupy.dot(r, x)), r

            x0 = cupy.ones(nn)
            for method, opts in (
                ("adam", {"learning_rate": 0.05, "maxiter": 2000}),
                ("nag", {"learning_rate": 0.09, "maxiter": 2000}),
            ):
                t0 = time.perf_counter()
                res = fastopt.minimize(fg, x0, jac=True, method=method, options=opts)
                dt = time.perf_counter() - t0
                print(
                    f"{method}: f={res.fun:.3e} nit={res.nit} status={res.status} "
                    f"{dt:.2f} s ({dt / max(res.nit, 1) * 1e6:.0f} us/iter incl. fun) "
                    f"x type {type(res.x).__module__}"
                )
        except Exception:
            traceback.print_exc()
    return 0


if __name__ == "__main__":
    sys.exit(main())
