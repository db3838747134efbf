"""``fastopt`` on dask arrays: a fit on a 2-worker ``LocalCluster`` (asv).

* ``DaskFit.time_fit``: ``LogisticRegression(C=1e4, tol=1e-6).fit`` on
  dask arrays (2e4 x 50 here, 8 chunks, generated on the workers; the
  2e5 x 50 comparison with dask-ml and the memory test are in
  ``benchmarks/dask_compare.py``); ``time_fit_in_memory`` the same data
  computed, one thread.
* ``DaskFit.time_evaluation``: one distributed loss + gradient (the round
  trip that every solver iteration pays).
* ``DaskFit.track_loss``, ``track_nfev``: the fit's loss and evaluations.

The cluster starts in ``setup`` (skipped without dask), which also fits once
so that the workers load the kernels (compile time excluded).
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS"):  # fmt: skip
    os.environ[_var] = "1"

import warnings  # noqa: E402

import numpy as np  # noqa: E402


class DaskFit:
    timeout = 300
    number = 1
    repeat = (1, 3, 30)

    def setup(self):
        try:
            import dask.array as da
            from distributed import Client, LocalCluster
        except ImportError:  # asv skips a benchmark whose setup raises this
            raise NotImplementedError("dask is not installed") from None
        from fastopt.models import LogisticRegression

        self.cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                    dashboard_address=None)  # fmt: skip
        self.client = Client(self.cluster)
        rng = da.random.default_rng(0)
        n, p = 20_000, 50
        self.X = rng.normal(size=(n, p), chunks=(n // 8, p)).persist()
        z = self.X @ np.linspace(-1, 1, p) + rng.normal(size=n, chunks=n // 8)
        self.y = (z > 0).astype(np.int64).persist()
        self.Xn, self.yn = self.X.compute(), self.y.compute()
        self.est = LogisticRegression(C=1e4, tol=1e-6)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.est.fit(self.X, self.y)
            LogisticRegression(C=1e4, tol=1e-6).fit(self.Xn, self.yn)
        # one evaluation: the chunks on the workers, the actors made, warm
        from fastopt.distributed._minimize import _fg_part
        from fastopt.models import _linear_kernels as lk
        from fastopt.models._dask import OnWorkers

        self.data = OnWorkers(LogisticRegression(), self.X, self.y, "indicator")
        self.eval_args = (_fg_part, lk.centered_fg, np.full(p + 1, 0.01),
                          (1e-9, True, 1.0, False, lk.LOGISTIC, np.zeros(p)))  # fmt: skip
        self.time_evaluation()

    def teardown(self):
        self.data.close()
        self.client.close()
        self.cluster.close()

    def time_evaluation(self):
        self.data.chunks.weighted_sum(*self.eval_args)

    def time_fit(self):
        self.est.fit(self.X, self.y)

    def time_fit_in_memory(self):
        from fastopt.models import LogisticRegression

        LogisticRegression(C=1e4, tol=1e-6).fit(self.Xn, self.yn)

    def track_loss(self):
        return self.est.loss_

    def track_nfev(self):
        return int(self.est.result_.nfev)
