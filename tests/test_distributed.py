"""fastopt.distributed and the estimators on dask arrays, on a LocalCluster.

One module-scoped cluster of 2 single-thread worker processes (the setting of
the issue and of the benchmarks), small data: the cost is the cluster's
start-up and the workers' first calls of the kernels.
"""

import os
import signal
import warnings

import numpy as np
import pytest
from scipy.optimize import check_grad
from sklearn.exceptions import ConvergenceWarning

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
try:  # dask[dataframe]: pandas and pyarrow
    import dask.dataframe as dd
    import pandas as pd
except ImportError:  # pragma: no cover - depends on the environment
    dd = pd = None
needs_frames = pytest.mark.skipif(dd is None, reason="needs dask[dataframe]")

import fastopt  # noqa: E402
from fastopt.distributed import Chunks, batch_order, minimize  # noqa: E402
from fastopt.models import (  # noqa: E402
    LinearRegression,
    LinearSVC,
    LogisticRegression,
    MLPClassifier,
    MLPRegressor,
)
from fastopt.models import _linear_kernels as lk  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def _data(n=1200, p=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)) + 1.5
    z = X[:, 0] - X[:, 1] + 0.5 * rng.normal(size=n)
    y3 = (z > -0.5).astype(int) + (z > 0.8)
    yr = X @ np.linspace(-1, 1, p) + 0.1 * rng.normal(size=n)
    return X, y3, yr


# the logistic objective of the linear kernels, (w, X, Y, *TAIL)
TAIL = (1e-3, True, 1.0, False, lk.LOGISTIC)


def _binary(n=1200, chunks=300):
    X, y3, _ = _data(n)
    Y = (y3 > 0).astype(np.float64).reshape(-1, 1)
    return X, Y, da.from_array(X, chunks=chunks), da.from_array(Y, chunks=(chunks, 1))


def test_objective_gradient():
    X, Y, _, _ = _binary(200)
    w = np.linspace(-0.3, 0.3, X.shape[1] + 1)
    err = check_grad(lambda v: lk.linear_fg(v, X, Y, *TAIL)[0],
                     lambda v: lk.linear_fg(v, X, Y, *TAIL)[1], w)  # fmt: skip
    assert err < 1e-6


@pytest.mark.parametrize("method", ["lbfgs", "scg", "hessian-free", "adahessian"])
def test_full_batch_matches_in_memory(client, method):
    # the same method with the same curvature in memory: the distributed sums
    # differ by rounding only.  AdaHessian (1,700 steps to gtol here) runs 150
    # steps and is compared where it stops.
    X, Y, Xd, Yd = _binary()
    kw = {}
    if method == "hessian-free":
        kw = {"gauss_newton": lk.linear_gn, "diagonal": lk.linear_gn_diag}
    elif method == "scg":
        kw = {"hessp": lk.linear_gn}
    elif method == "adahessian":
        kw = {"diagonal": lk.linear_gn_diag}
    opts = {"gtol": 1e-7, "maxiter": 150 if method == "adahessian" else 1000}
    res = minimize(lk.linear_fg, np.zeros(7), (Xd, Yd), args=TAIL, method=method,
                   options=dict(opts), **kw)  # fmt: skip
    mem = {k: v for k, v in kw.items() if k != "hessp"}
    ref = fastopt.minimize(lk.linear_fg, np.zeros(7), args=(X, Y, *TAIL), method=method,
                           jac=True, hessp=kw.get("hessp"), options={**opts, **mem})  # fmt: skip
    assert res.status == ref.status, res.message
    assert abs(res.fun - ref.fun) <= 1e-6 * abs(ref.fun)
    if method != "adahessian":
        assert res.success
        opt = fastopt.minimize(lk.linear_fg, np.zeros(7), args=(X, Y, *TAIL), method="lbfgs",
                               jac=True, options={"gtol": 1e-10})  # fmt: skip
        assert abs(res.fun - opt.fun) <= 1e-6 * abs(opt.fun)


def test_full_batch_same_iterates_as_in_memory(client):
    # same method, same start: the distributed sum differs from the in-memory
    # one by rounding only, so lbfgs takes the same number of steps
    X, Y, Xd, Yd = _binary()
    res = minimize(lk.linear_fg, np.zeros(7), (Xd, Yd), args=TAIL, options={"gtol": 1e-6})
    ref = fastopt.minimize(lk.linear_fg, np.zeros(7), args=(X, Y, *TAIL), method="lbfgs",
                           jac=True, options={"gtol": 1e-6})  # fmt: skip
    assert res.nit == ref.nit and res.nfev == ref.nfev
    np.testing.assert_allclose(res.x, ref.x, rtol=1e-9, atol=1e-12)


def _reference_epochs(X, Y, sizes, batch, seed, epochs, method="adam", **hyper):
    opt = fastopt.optimizer(method, **hyper)
    x = np.zeros(X.shape[1] + 1)
    state = opt.init(x)
    for e in range(epochs):
        for b in batch_order(sizes, batch, seed, e):
            _, g = lk.linear_fg(x, X[b], Y[b], *TAIL)
            state = opt.step(x, g, state)
    return x


@pytest.mark.parametrize("local", [False, True])
def test_minibatch_bit_identical(client, local):
    # chunks of 300 rows, batches of 70: every part ends in a short batch
    X, Y, Xd, Yd = _binary()
    opts = {"batch_size": 70, "epochs": 3, "seed": 11, "learning_rate": 0.01}
    res = minimize(lk.linear_fg, np.zeros(7), (Xd, Yd), args=TAIL, method="adam", options=opts,
                   client=False if local else None)  # fmt: skip
    ref = _reference_epochs(X, Y, np.full(4, 300), 70, 11, 3, learning_rate=0.01)
    assert res.success and res.epochs == 3 and res.nit == 3 * 4 * 5
    np.testing.assert_array_equal(res.x, ref)


def test_batch_order_covers_every_row_once():
    sizes = np.array([5, 3, 4])
    for shuffle in (True, False):
        batches = batch_order(sizes, 2, 3, 1, do_shuffle=shuffle)
        rows = np.sort(np.concatenate(batches))
        np.testing.assert_array_equal(rows, np.arange(12))
    assert [len(b) for b in batch_order(sizes, 2, 0, 0, do_shuffle=False)] == [2, 2, 1, 2, 1, 2, 2]


def test_chunks_that_do_not_line_up():
    X = da.zeros((100, 3), chunks=25)
    y = da.zeros(100, chunks=30)
    with pytest.raises(ValueError, match="row chunks of y .* do not line up with those of X"):
        minimize(lk.linear_fg, np.zeros(4), (X, y), client=False)
    with pytest.raises(ValueError, match="do not line up"):
        LogisticRegression().fit(X, y)


def test_unknown_chunk_sizes(client):
    # boolean indexing leaves the row chunks unknown: the parts count their
    # rows on the workers; a chunk left without rows is dropped
    X, y3, _ = _data(600)
    keep = X[:, 0] > 1.0
    keep[:150] = False  # the first chunk loses all its rows
    Xd, yd = da.from_array(X, chunks=150), da.from_array(y3, chunks=150)
    kd = da.from_array(keep, chunks=150)
    Xu, yu = Xd[kd], yd[kd]
    assert np.isnan(Xu.chunks[0][0])
    chunks = Chunks((Xu, yu), names=("X", "y"))
    try:
        assert chunks.n == keep.sum() and len(chunks.parts) == 3
        np.testing.assert_array_equal(
            chunks.sizes, [keep[k : k + 150].sum() for k in (150, 300, 450)]
        )
    finally:
        chunks.close()
    est = LogisticRegression(C=10.0, tol=1e-8).fit(Xu, yu)
    ref = LogisticRegression(C=10.0, tol=1e-8).fit(X[keep], y3[keep])
    assert abs(est.loss_ - ref.loss_) <= 1e-6 * abs(ref.loss_)


@needs_frames
def test_partitions_that_do_not_line_up(client):
    X, y3, _ = _data(400)
    Xf = dd.from_pandas(pd.DataFrame(X), npartitions=4)
    yf = dd.from_pandas(pd.Series(y3), npartitions=2)
    with pytest.raises(ValueError, match=r"row chunks of y \(2 chunks\) do not line up"):
        LogisticRegression().fit(Xf, yf)
    # as many partitions, other rows: found where the partitions are computed
    yf = dd.from_pandas(pd.Series(y3[:399]), npartitions=4)
    with pytest.raises(ValueError, match="a chunk has .* rows in y and .* in X"):
        LogisticRegression().fit(Xf, yf)


def test_nonfinite_chunk_same_error_as_in_memory(client):
    X, y3, _ = _data(400)
    X[350, 2] = np.nan
    with pytest.raises(ValueError) as mem:
        LogisticRegression().fit(X, y3)
    with pytest.raises(ValueError) as dist:
        LogisticRegression().fit(da.from_array(X, chunks=100), da.from_array(y3, chunks=100))
    assert str(dist.value) == str(mem.value)


def test_nonfinite_objective_keeps_last_good_iterate(client):
    X, Y, Xd, Yd = _binary()
    Yd = Yd.copy()
    Y2 = Y.copy()
    Y2[5, 0] = np.inf
    res = minimize(lk.linear_fg, np.zeros(7), (Xd, da.from_array(Y2, chunks=(300, 1))),
                   args=TAIL)  # fmt: skip
    ref = fastopt.minimize(lk.linear_fg, np.zeros(7), args=(X, Y2, *TAIL), method="lbfgs",
                           jac=True)  # fmt: skip
    assert not res.success and res.status == ref.status
    np.testing.assert_array_equal(res.x, ref.x)


def _estimators():
    return [
        (LogisticRegression(C=10.0, tol=1e-8), "y3"),
        (LogisticRegression(C=10.0, tol=1e-8), "y2"),
        (LogisticRegression(C=10.0, tol=1e-8, solver="hessian-free"), "y3"),
        (LinearRegression(alpha=1.0, tol=1e-8), "yr"),
        (LinearSVC(C=1.0, tol=1e-8), "y3"),
        # non-convex: the distributed sums differ from the in-memory ones by
        # rounding, which over hundreds of steps leads lbfgs to another stop;
        # 30 steps follow the same path
        (MLPClassifier((5,), solver="lbfgs", tol=1e-7, max_iter=30, random_state=0), "y2"),
        (MLPRegressor((5,), solver="lbfgs", tol=1e-7, max_iter=30, random_state=0), "yr"),
    ]


@pytest.mark.parametrize(
    "est,target",
    _estimators(),
    ids=lambda v: getattr(v, "solver", v) if not isinstance(v, str) else v,
)
def test_estimators_fit_dask_arrays(client, est, target):
    X, y3, yr = _data()
    y = {"y3": y3, "y2": (y3 > 0).astype(int), "yr": yr}[target]
    Xd, yd = da.from_array(X, chunks=300), da.from_array(y, chunks=300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an MLP may stop on a line search
        ref = est.__class__(**est.get_params()).fit(X, y)
        est.fit(Xd, yd)
    assert abs(est.loss_ - ref.loss_) <= 1e-6 * abs(ref.loss_)
    pred = est.predict(Xd)
    assert isinstance(pred, da.Array)
    if target == "yr":
        np.testing.assert_allclose(pred.compute(), ref.predict(X), rtol=1e-4, atol=1e-4)
    else:
        assert np.mean(pred.compute() == ref.predict(X)) > 0.99
    s = est.score(Xd, yd)
    assert isinstance(s, da.Array)
    assert abs(float(s.compute()) - est.score(X, y)) < 1e-12
    if hasattr(est, "predict_proba"):
        P = est.predict_proba(Xd)
        assert isinstance(P, da.Array) and P.shape == (X.shape[0], len(est.classes_))
        np.testing.assert_allclose(P.compute(), est.predict_proba(X), rtol=1e-12)
    if hasattr(est, "decision_function"):
        np.testing.assert_allclose(est.decision_function(Xd).compute(),
                                   est.decision_function(X), rtol=1e-12)  # fmt: skip


def _frames(X, y, npartitions=4, names=True):
    cols = [f"f{k}" for k in range(X.shape[1])] if names else None
    Xp = pd.DataFrame(X, columns=cols)
    yp = pd.Series(y, name="target") if y.ndim == 1 else pd.DataFrame(y)
    return Xp, yp, dd.from_pandas(Xp, npartitions=npartitions), dd.from_pandas(yp, npartitions)


@needs_frames
@pytest.mark.parametrize(
    "est,target",
    [(e, t) for e, t in _estimators() if getattr(e, "solver", "") != "hessian-free"][1:],
    ids=lambda v: type(v).__name__ if not isinstance(v, str) else v,
)
def test_estimators_fit_dask_frames(client, est, target):
    # a dask DataFrame X and Series y: the fit of the same pandas objects in
    # memory, feature names included (checked once on the client)
    X, y3, yr = _data()
    y = {"y3": y3, "y2": (y3 > 0).astype(int), "yr": yr}[target]
    Xp, yp, Xf, yf = _frames(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = est.__class__(**est.get_params()).fit(Xp, yp)
        est.fit(Xf, yf)
    assert abs(est.loss_ - ref.loss_) <= 1e-6 * abs(ref.loss_)
    np.testing.assert_array_equal(est.feature_names_in_, ref.feature_names_in_)
    assert est.n_features_in_ == ref.n_features_in_ == X.shape[1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no feature-name warning, here or on the workers
        pred = est.predict(Xf)
        assert isinstance(pred, da.Array)
        got = pred.compute()
        s = est.score(Xf, yf)
        assert isinstance(s, da.Array)
        score = float(s.compute())
    if target == "yr":
        np.testing.assert_allclose(got, ref.predict(Xp), rtol=1e-4, atol=1e-4)
    else:
        assert np.mean(got == ref.predict(Xp)) > 0.99
    assert abs(score - est.score(Xp, yp)) < 1e-12


@needs_frames
def test_feature_names(client):
    X, y3, _ = _data(400)
    Xp, yp, Xf, yf = _frames(X, y3)
    clf = LogisticRegression().fit(Xf, yf)
    np.testing.assert_array_equal(clf.feature_names_in_, Xp.columns)
    Xd = da.from_array(X, chunks=100)
    # scikit-learn's checks, once on the client
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        clf.predict(Xd)
    with pytest.raises(ValueError, match="The feature names should match"):
        clf.predict(Xf[list(reversed(Xf.columns))])
    with pytest.raises(ValueError, match="X has 5 features, but LogisticRegression is expecting 6"):
        clf.predict(Xd[:, :5])
    # refitted on an array: the names go, as in scikit-learn
    clf.fit(Xd, da.from_array(y3, chunks=100))
    assert not hasattr(clf, "feature_names_in_")
    # no string names: none stored
    _, _, Xf, yf = _frames(X, y3, names=False)
    assert not hasattr(LogisticRegression().fit(Xf, yf), "feature_names_in_")
    # in memory, pandas: scikit-learn's own
    assert list(LogisticRegression().fit(Xp, yp).feature_names_in_) == list(Xp.columns)


def test_adahessian_estimator_full_batch(client):
    # batch_size="auto" means minibatch for adahessian in memory; on dask
    # arrays it runs full batch (the distributed fg holds the data)
    X, y3, _ = _data(400)
    Xd, yd = da.from_array(X, chunks=100), da.from_array(y3, chunks=100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = LogisticRegression(solver="adahessian", max_iter=30).fit(Xd, yd)
        ref = LogisticRegression(solver="adahessian", max_iter=30, batch_size=None).fit(X, y3)
    assert est.n_iter_ == ref.n_iter_ == 30
    assert abs(est.loss_ - ref.loss_) <= 1e-6 * abs(ref.loss_)


def test_minibatch_estimator(client):
    X, y3, _ = _data()
    Xd, yd = da.from_array(X, chunks=300), da.from_array(y3, chunks=300)
    clf = MLPClassifier((5,), solver="adam", batch_size=50, max_iter=3, random_state=0,
                        solver_options={"learning_rate": 0.02},
                        n_iter_no_change=None)  # fmt: skip
    # 3 epochs, no early stopping: the full-data gradient is above tol, and
    # both fits say so (ConvergenceWarning), as the in-memory one always did
    with pytest.warns(ConvergenceWarning, match="gradient inf-norm"):
        ref = MLPClassifier(**clf.get_params()).fit(X, y3)  # other batches, same epochs
    with pytest.warns(ConvergenceWarning, match="gradient inf-norm"):
        clf.fit(Xd, yd)
    assert clf.n_iter_ == 3 and len(clf.loss_curve_) == 3
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert clf.score(X, y3) > ref.score(X, y3) - 0.1


def test_minibatch_early_stopping_and_progress(client, capsys):
    # the in-memory fit's Monitor: tol=10 stops after n_iter_no_change=2
    # epochs without an improvement of 10, as in memory; verbose shows a bar
    X, y3, _ = _data()
    Xd, yd = da.from_array(X, chunks=300), da.from_array(y3, chunks=300)
    params = dict(solver="adam", batch_size=50, max_iter=20, random_state=0, tol=10.0,
                  n_iter_no_change=2, solver_options={"learning_rate": 0.02})  # fmt: skip
    clf = MLPClassifier((5,), verbose=True, **params).fit(Xd, yd)
    ref = MLPClassifier((5,), **params).fit(X, y3)
    assert clf.n_iter_ == ref.n_iter_ == 3 and len(clf.loss_curve_) == 3
    assert "MLPClassifier" in capsys.readouterr().out


def test_dropout_and_batch_norm_rejected(client):
    X, y3, _ = _data(200)
    Xd, yd = da.from_array(X, chunks=100), da.from_array(y3, chunks=100)
    with pytest.raises(ValueError, match="dropout and batch_norm are not supported"):
        MLPClassifier((3,), dropout=0.1).fit(Xd, yd)
    with pytest.raises(ValueError, match="solver='kfac' and whiten=True are not supported"):
        MLPClassifier((3,), solver="kfac").fit(Xd, yd)
    with pytest.raises(ValueError, match="solver='kfac' and whiten=True are not supported"):
        MLPClassifier((3,), whiten=True).fit(Xd, yd)


def test_worker_lost_mid_fit(client):
    # kill one worker process (SIGKILL, no goodbye) after the 3rd iteration:
    # its chunks are recomputed elsewhere and the fit ends where it would have
    X, Y, _, _ = _binary()
    Xd = da.from_array(X, chunks=300)
    Yd = da.from_array(Y, chunks=(300, 1))
    ref = minimize(lk.linear_fg, np.zeros(7), (Xd, Yd), args=TAIL, options={"gtol": 1e-9})
    pids = client.run(os.getpid)
    victim = sorted(pids.values())[0]

    def kill(intermediate_result):
        if intermediate_result.nit == 3:
            os.kill(victim, signal.SIGKILL)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = minimize(lk.linear_fg, np.zeros(7), (Xd, Yd), args=TAIL, options={"gtol": 1e-9},
                       callback=kill)  # fmt: skip
    assert res.success
    assert abs(res.fun - ref.fun) <= 1e-12 * abs(ref.fun)
    client.wait_for_workers(2, timeout=60)


def test_numpy_input_unchanged():
    X, y3, _ = _data(300)
    clf = LogisticRegression().fit(X, y3)
    assert isinstance(clf.predict(X), np.ndarray)
    assert isinstance(clf.score(X, y3), float)
