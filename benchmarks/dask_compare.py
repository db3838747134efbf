"""fastopt on dask arrays against dask-ml, and against itself in memory.

Run from the repository root (needs ``pip install ".[dask]" dask-ml psutil``)::

    python benchmarks/dask_compare.py [--quick]

On a ``LocalCluster`` of 2 single-thread worker processes (and of 1, for the
scaling line), every thread pool pinned to one thread:

1. 2e5 x 50 logistic regression (C=1e4, tol=1e-6), 8 chunks, generated on
   the workers: ``fastopt.models.LogisticRegression.fit`` on the dask arrays
   against dask-ml's ``LogisticRegression(solver="lbfgs")`` on the same
   cluster and against fastopt's in-memory fit of the same (computed) data
   on one thread; every solution's loss in scikit-learn's objective.
   Targets: >= 5x faster than dask-ml, <= 2x the in-memory fit + 1 s.
2. Time per evaluation: the round trip of one loss + gradient, split into the
   kernel (measured on the workers), an empty round trip to the same actors
   (transfer + dispatch) and the rest.
3. 1 vs 2 workers: the fit and one evaluation.
4. 2e6 x 50 (800 MB) generated on the workers: the client's resident memory
   before and at its peak during ``fit`` (target: grows < 200 MB).

Compile time is excluded: every configuration fits a small problem first (the
kernels load from numba's cache on each worker).
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS"):  # fmt: skip
    os.environ[_var] = "1"

import argparse  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402


def make_data(n, p, chunks, seed=0):
    """``X`` (n, p) and binary ``y`` as dask arrays computed on the workers."""
    import dask.array as da

    rng = da.random.default_rng(seed)
    X = rng.normal(size=(n, p), chunks=(chunks, p))
    w = np.linspace(-1.0, 1.0, p)
    z = X @ w + 0.5 + rng.normal(size=n, chunks=chunks)
    y = (z > 0).astype(np.int64)
    return X, y


def sk_objective(coef, intercept, X, y, C):
    """scikit-learn's lbfgs objective divided by C n, the fastopt loss_."""
    from fastopt.models import _linear_kernels as lk

    w = np.concatenate([coef.ravel(), np.atleast_1d(intercept)])
    Y = y.astype(np.float64).reshape(-1, 1)
    return float(lk.linear_fg(w, X, Y, 1.0 / (C * X.shape[0]), True, 1.0, False,
                              lk.LOGISTIC)[0])  # fmt: skip


def _cluster(n_workers):
    from distributed import Client, LocalCluster

    t = time.perf_counter()
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                           dashboard_address=None)  # fmt: skip
    client = Client(cluster)
    return cluster, client, time.perf_counter() - t


def _fit(est, X, y):
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    return time.perf_counter() - t


def _warm(client):
    from fastopt.models import LogisticRegression

    X, y = make_data(2000, 50, 250, seed=1)
    LogisticRegression(C=1e4, tol=1e-6).fit(X, y)


def _kernel_time(part, reps):
    from fastopt.models import _linear_kernels as lk

    X, Y = part
    w = np.full(X.shape[1] + 1, 0.01)
    t = time.perf_counter()
    for _ in range(reps):
        lk.centered_fg(w, X, Y, 1e-9, True, 1.0, False, lk.LOGISTIC, np.zeros(X.shape[1]))
    return (time.perf_counter() - t) / reps


def _noop(part):
    return 0.0


def evaluation_split(est_cls, X, y, reps):
    """(round trip, kernel per worker, empty round trip) of one evaluation, s."""
    from fastopt.distributed._minimize import _fg_part
    from fastopt.models import _dask
    from fastopt.models import _linear_kernels as lk

    chunks = _dask._chunks(est_cls(), X, y, "binary01", np.array([0, 1]))
    try:
        p = X.shape[1]
        w = np.full(p + 1, 0.01)
        tail = (1e-9, True, 1.0, False, lk.LOGISTIC, np.zeros(p))
        chunks.weighted_sum(_fg_part, lk.centered_fg, w, tail)
        t = time.perf_counter()
        for _ in range(reps):
            chunks.weighted_sum(_fg_part, lk.centered_fg, w, tail)
        trip = (time.perf_counter() - t) / reps
        chunks.weighted_sum(_noop)
        t = time.perf_counter()
        for _ in range(reps):
            chunks.weighted_sum(_noop)
        empty = (time.perf_counter() - t) / reps
        # the kernel on each worker's own parts, in the worker (a task per part)
        per_part = chunks.gather([chunks.submit(_kernel_time, f, 5) for f in chunks.parts])
        groups = chunks.groups()
        kernel = max(sum(per_part[k] for k in idx) for _, idx in groups)
    finally:
        chunks.close()
    return trip, kernel, empty


def memory_run(n, p, chunks, C):
    import psutil

    from fastopt.models import LogisticRegression

    proc = psutil.Process()
    X, y = make_data(n, p, chunks, seed=2)
    base = proc.memory_info().rss
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.02)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    est = LogisticRegression(C=C, tol=1e-4)
    t = _fit(est, X, y)
    done.set()
    th.join()
    return (peak[0] - base) / 2**20, t, est


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller problems, no dask-ml at 2e5")
    ap.add_argument("--no-dask-ml", action="store_true")
    ap.add_argument("--no-memory", action="store_true")
    a = ap.parse_args()
    from fastopt.models import LogisticRegression

    n, p, nchunks, C, tol = 200_000, 50, 8, 1e4, 1e-6
    big = 2_000_000
    if a.quick:
        n, big = 20_000, 200_000
    chunk = n // nchunks
    print(f"fastopt benchmarks/dask_compare.py  [load average {os.getloadavg()[0]:.2f}]")
    print(f"logistic regression {n} x {p}, C={C}, tol={tol}, {nchunks} chunks\n")

    cluster, client, startup = _cluster(2)
    try:
        _warm(client)
        X, y = make_data(n, p, chunk)
        Xn, yn = X.compute(), y.compute()
        # fastopt in memory, one thread, warm
        mem = LogisticRegression(C=C, tol=tol)
        _fit(mem, Xn[:2000], yn[:2000])
        t_mem = min(_fit(mem, Xn, yn) for _ in range(2))
        f_mem = sk_objective(mem.coef_, mem.intercept_, Xn, yn, C)
        dist = LogisticRegression(C=C, tol=tol)
        t_dist = min(_fit(dist, X, y) for _ in range(2))
        f_dist = sk_objective(dist.coef_, dist.intercept_, Xn, yn, C)
        nfev = dist.result_.nfev
        rows = [("fastopt, in memory (1 thread)", t_mem, f_mem, mem.result_.nfev),
                ("fastopt, dask arrays (2 workers)", t_dist, f_dist, nfev)]  # fmt: skip
        t_dml = None
        if not (a.no_dask_ml or a.quick):
            from dask_ml.linear_model import LogisticRegression as DMLLogistic

            dml = DMLLogistic(C=C, solver="lbfgs", tol=tol, max_iter=1000)
            t_dml = _fit(dml, X, y)
            f_dml = sk_objective(dml.coef_, dml.intercept_, Xn, yn, C)
            rows.append(("dask-ml lbfgs (2 workers)", t_dml, f_dml, None))
        best = min(r[2] for r in rows)
        print(f"{'':34s} {'fit (s)':>9s} {'loss - best':>12s} {'evals':>6s}")
        for name, t, f, ev in rows:
            print(f"{name:34s} {t:9.3f} {f - best:12.2e} {ev if ev is not None else '':>6}")
        print(f"cluster start-up: {startup:.2f} s")
        trip, kernel, empty = evaluation_split(LogisticRegression, X, y, 20)
        print("\none evaluation (loss + gradient, all rows), 2 workers:")
        print(f"  round trip {trip * 1e3:8.2f} ms = kernel {kernel * 1e3:.2f} ms (slowest worker)"
              f" + empty round trip {empty * 1e3:.2f} ms + rest "
              f"{(trip - kernel - empty) * 1e3:.2f} ms")  # fmt: skip
        targets = [
            ("fit on dask arrays <= 2x in memory + 1 s", t_dist <= 2 * t_mem + 1.0,
             f"{t_dist:.2f} s vs {2 * t_mem + 1.0:.2f} s"),
            ("same loss (1e-6 relative)", abs(f_dist - f_mem) <= 1e-6 * abs(f_mem),
             f"{abs(f_dist - f_mem) / abs(f_mem):.1e}"),
        ]  # fmt: skip
        if t_dml is not None:
            targets.append(("fit >= 5x faster than dask-ml lbfgs", t_dml >= 5 * t_dist,
                            f"x{t_dml / t_dist:.1f}"))  # fmt: skip
        mem_line = None
        if not a.no_memory:
            grow, t_big, est = memory_run(big, p, big // 8, C)
            mem_line = (grow, t_big, est.result_.nfev)
            targets.append((f"client memory growth during fit of {big} x {p} < 200 MB",
                            grow < 200, f"{grow:.0f} MB"))  # fmt: skip
    finally:
        client.close()
        cluster.close()

    cluster1, client1, _ = _cluster(1)
    try:
        _warm(client1)
        X, y = make_data(n, p, chunk)
        t1 = min(_fit(LogisticRegression(C=C, tol=tol), X, y) for _ in range(2))
        trip1, kernel1, empty1 = evaluation_split(LogisticRegression, X, y, 20)
    finally:
        client1.close()
        cluster1.close()
    print("\nscaling (fit s, one evaluation ms: round trip / kernel / empty round trip):")
    for label, t, r, k, e in (("1 worker ", t1, trip1, kernel1, empty1),
                              ("2 workers", t_dist, trip, kernel, empty)):  # fmt: skip
        print(f"  {label}: {t:7.3f}   {r * 1e3:7.2f} / {k * 1e3:7.2f} / {e * 1e3:5.2f}")
    if mem_line is not None:
        print(f"\n{big} x {p} on the workers: client RSS grew {mem_line[0]:.0f} MB during fit "
              f"({mem_line[1]:.1f} s, {mem_line[2]} evaluations)")  # fmt: skip
    print("\ntargets:")
    for name, ok, detail in targets:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}: {detail}")


if __name__ == "__main__":
    main()
