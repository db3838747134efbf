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
2. Time per evaluation: the round trip of one loss + gradient (medians of
   warm repeats), split into the kernel, timed on each worker inside the
   same actor call (the slowest worker's time is what the round trip
   waits for), and the rest (transfer of ``x`` and the gradient, the actor
   call's dispatch, the client's sum).  The rest is checked against an
   empty round trip: the same call with a kernel that returns zeros at
   once.  The kernel on all rows in this process, for scale.
3. 1 vs 2 workers: the fit, split into putting the chunks on the workers
   (computing them where they are generated, validation, classes, target
   encoding) and the rest (the solver's evaluations), and one evaluation.
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

#: warm evaluations per timing (medians)
REPS = 30


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


def _fit_phases(est, X, y):
    """``(fit s, chunks s)``: a fit on dask arrays and, within it, the time spent
    putting the chunks on the workers (computing, validating and encoding
    them: the construction of its :class:`fastopt.models._dask.OnWorkers`)."""
    from fastopt.models import _dask

    init = _dask.OnWorkers.__init__
    spent = []

    def timed(self, *args, **kwargs):
        t = time.perf_counter()
        init(self, *args, **kwargs)
        spent.append(time.perf_counter() - t)

    _dask.OnWorkers.__init__ = timed
    try:
        total = _fit(est, X, y)
    finally:
        _dask.OnWorkers.__init__ = init
    return total, spent[0]


def _warm(client):
    from fastopt.models import LogisticRegression

    X, y = make_data(2000, 50, 250, seed=1)
    LogisticRegression(C=1e4, tol=1e-6).fit(X, y)


def _empty_fg(w, X, Y, *tail):
    # the "kernel" of the empty round trip: a d-sized gradient back, no work
    return 0.0, np.zeros_like(w)


def _tail(p):
    from fastopt.models import _linear_kernels as lk

    return (1e-9, True, 1.0, False, lk.LOGISTIC, np.zeros(p))


def local_kernel(X, Y, reps):
    """Median time of the loss + gradient kernel on all rows in this process, s."""
    from fastopt.models import _linear_kernels as lk

    w = np.full(X.shape[1] + 1, 0.01)
    tail = _tail(X.shape[1])
    lk.centered_fg(w, X, Y, *tail)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        lk.centered_fg(w, X, Y, *tail)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def evaluation_split(X, y, reps):
    """One evaluation on the workers, medians over ``reps`` warm repeats, s.

    Returns ``(trip, kernel, kernel_sum, empty)``: the round trip of one
    loss + gradient; the
    slowest worker's kernel time and the sum over workers, both timed inside
    the same actor calls; the round trip of the same call with an empty
    kernel.
    """
    from fastopt.distributed._minimize import _fg_part
    from fastopt.models import LogisticRegression
    from fastopt.models import _linear_kernels as lk
    from fastopt.models._dask import OnWorkers

    with OnWorkers(LogisticRegression(), X, y, "indicator") as data:
        chunks = data.chunks
        w = np.full(X.shape[1] + 1, 0.01)
        tail = _tail(X.shape[1])
        for fn in (lk.centered_fg, _empty_fg):  # warm: actors made, functions sent
            for _ in range(3):
                chunks.timed_sum(_fg_part, fn, w, tail)
        trips, kernels, sums, empties = [], [], [], []
        for _ in range(reps):
            t = time.perf_counter()
            _, secs = chunks.timed_sum(_fg_part, lk.centered_fg, w, tail)
            trips.append(time.perf_counter() - t)
            kernels.append(max(secs))
            sums.append(sum(secs))
            t = time.perf_counter()
            chunks.timed_sum(_fg_part, _empty_fg, w, tail)
            empties.append(time.perf_counter() - t)
    med = [float(np.median(v)) for v in (trips, kernels, sums, empties)]
    return tuple(med)


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
        t_dist, c_dist = min(_fit_phases(dist, X, y) for _ in range(2))
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
        split2 = evaluation_split(X, y, REPS)
        k_local = local_kernel(Xn, yn.astype(np.float64).reshape(-1, 1), REPS)
        trip, kernel, ksum, empty = split2
        print(f"\none evaluation (loss + gradient, all rows), 2 workers, medians of {REPS}:")
        print(f"  round trip {trip * 1e3:.2f} ms = kernel {kernel * 1e3:.2f} ms (slowest worker, "
              f"timed in the same call) + rest {(trip - kernel) * 1e3:.2f} ms (transfer, "
              "dispatch, sum)")  # fmt: skip
        print(f"  empty round trip (the same call, no kernel): {empty * 1e3:.2f} ms; kernel "
              f"summed over the workers {ksum * 1e3:.2f} ms; in this process on all rows "
              f"{k_local * 1e3:.2f} ms")  # fmt: skip
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
        t1, c1 = min(_fit_phases(LogisticRegression(C=C, tol=tol), X, y) for _ in range(2))
        split1 = evaluation_split(X, y, REPS)
    finally:
        client1.close()
        cluster1.close()
    print("\nscaling: fit (s, best of 2) = chunks to the workers + the rest (the solver), both")
    print(f"timed in the same fit; one evaluation (ms, medians of {REPS}), split as above")
    print(f"{'':11s} {'fit':>6s} {'chunks':>7s} {'rest':>6s} | {'trip':>6s} {'kernel':>7s} "
          f"{'rest':>6s} {'empty':>6s} {'kernel sum':>10s}")  # fmt: skip
    for label, t, setup, (r, k, ks, e) in (("1 worker", t1, c1, split1),
                                            ("2 workers", t_dist, c_dist, split2)):  # fmt: skip
        print(f"{label:11s} {t:6.3f} {setup:7.3f} {t - setup:6.3f} | {r * 1e3:6.2f} {k * 1e3:7.2f} "
              f"{(r - k) * 1e3:6.2f} {e * 1e3:6.2f} {ks * 1e3:10.2f}")  # fmt: skip
    if mem_line is not None:
        print(f"\n{big} x {p} on the workers: client RSS grew {mem_line[0]:.0f} MB during fit "
              f"({mem_line[1]:.1f} s, {mem_line[2]} evaluations)")  # fmt: skip
    print("\ntargets:")
    for name, ok, detail in targets:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}: {detail}")


if __name__ == "__main__":
    main()
