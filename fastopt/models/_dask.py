"""The estimators on dask arrays and DataFrames: ``fit`` on the workers, lazy predictions.

``fit(X, y)`` with dask arrays, DataFrames or Series gets an
:class:`OnWorkers` from :func:`fastopt.models._data.fit_data`: the rows of
``X`` and ``y`` are validated (scikit-learn's ``check_X_y``) and encoded on
the workers that compute them (:class:`fastopt.distributed.Chunks`), and the
estimator's own ``fit`` runs the solver on the client with the distributed
reductions of :mod:`fastopt.distributed` over the same compiled kernels as in
memory:

* full batch (``lbfgs``, ``scg``, ``hessian-free``, ``adahessian`` and any
  method with ``batch_size=None``): one round trip per evaluation of the
  loss and gradient, the Gauss-Newton product or its diagonal; the linear
  models' centring means are computed chunk-wise (exact column means);
* minibatch (a first-order rule with a ``batch_size``): the epochs run on the
  workers, part after part (see :mod:`fastopt.distributed._minimize` for the
  batch order).

A classifier's chunks are computed once: the classes are the union of the
chunks' labels, found where the chunks are, and the targets are encoded
there afterwards (a ``y`` computed from ``X`` is not computed twice).

Predictions on a dask array or DataFrame are lazy dask arrays (dask-ml's
convention): the estimator's own method mapped over the row blocks (a
DataFrame's partitions; the feature names are checked once, here).  Not on
dask data: the MLPs' ``dropout``, ``batch_norm``, ``whiten`` and
``solver="kfac"`` (batch statistics, dropout masks and Kronecker factors
are not sums over chunks), second-order methods in minibatch mode, and
``sample_weight`` in ``score``.
"""

import functools

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_feature_names, check_is_fitted, check_X_y

from .._status import EPOCHS
from ..distributed._chunks import is_dask_collection, is_dask_frame
from ._data import check_classes, columns, encode


def is_dask(*arrays):
    """Whether any of ``arrays`` is a dask array, DataFrame or Series.

    dask is not imported otherwise.
    """
    return any(is_dask_collection(a) for a in arrays)


def _names_probe(X):
    """What scikit-learn reads feature names from: an empty frame with ``X``'s columns."""
    if is_dask_frame(X):
        import pandas as pd

        return pd.DataFrame(columns=X.columns)
    return X


# ---------------------------------------------------------------------------
# on the workers: one row block to the kernels' arrays
# ---------------------------------------------------------------------------


def _prepare(name, numeric, Xb, yb):
    """``(X, y)`` of one row block: scikit-learn's ``check_X_y`` as in memory.

    ``X`` float64, C-ordered, writeable; a regressor's ``y`` as the kernels'
    columns, a classifier's as labels (encoded by :func:`_encode_part` once
    the classes of all chunks are known).  A NaN in a chunk raises the error
    it raises in memory; a chunk may have no rows (it is left out).
    """
    X, y = check_X_y(Xb, yb, dtype=np.float64, order="C", multi_output=numeric,
                     y_numeric=numeric, estimator=name, ensure_min_samples=0)  # fmt: skip
    if not X.flags.writeable:
        X = X.copy()
    return X, (columns(y) if numeric else y)


def _labels_part(part):
    return np.unique(part[1])


def _encode_part(part, classes, coding):
    X, y = part
    return X, encode(np.searchsorted(classes, y), len(classes), coding)


def _colmean_part(part):
    return part[0].mean(axis=0)


def _value_part(part, fn, w, tail):
    return float(fn(w, *part, *tail))


class OnWorkers:
    """The rows of ``fit(X, y)`` on dask workers: :class:`fastopt.models._data.InMemory`'s
    interface over :class:`fastopt.distributed.Chunks`.

    Validates ``X`` and ``y`` (dask arrays, DataFrames or Series with the same
    row chunks), sets ``n_features_in_`` and ``feature_names_in_`` (from a
    DataFrame's string column names, as scikit-learn does) and a
    classifier's ``classes_``, and holds the encoded chunks on the workers
    until :meth:`close`.
    """

    in_memory = False

    def __init__(self, est, X, y, coding):
        from functools import partial

        from ..distributed import Chunks

        name = type(est).__name__
        if not (is_dask(X) and is_dask(y)):
            raise TypeError(
                f"{name}.fit: X and y must both be dask collections or neither; got "
                f"{type(X).__name__} and {type(y).__name__}"
            )
        if X.ndim != 2:
            raise ValueError(f"Expected 2D array, got X with shape {X.shape}")
        if y.ndim not in (1, 2):
            raise ValueError(f"y must be 1-D or 2-D; got shape {y.shape}")
        numeric = coding == "numeric"
        if not numeric and y.ndim == 2 and y.shape[1] != 1:
            raise ValueError(f"y should be a 1d array, got an array of shape {y.shape} instead.")
        _check_feature_names(est, _names_probe(X), reset=True)
        est.n_features_in_ = int(X.shape[1])
        self.p = est.n_features_in_
        self.y_ndim = int(y.ndim)
        self.n_outputs = 1 if (y.ndim == 1 or not numeric) else int(y.shape[1])
        self.chunks = Chunks((X, y), names=("X", "y"), prepare=partial(_prepare, name, numeric))
        try:
            if not numeric:
                labels = self.chunks.map(_labels_part)
                classes = np.unique(np.concatenate(labels))
                check_classification_targets(classes)
                est.classes_ = check_classes(est, classes)
                self.chunks.transform(_encode_part, classes, coding)
                if len(classes) > 2:
                    self.n_outputs = len(classes)
        except BaseException:
            self.chunks.close()
            raise
        self.n = self.chunks.n

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        self.chunks.close()

    def batch_size(self, est, method):
        """The minibatch size on dask data (None: full batch).

        Only the first-order rules run minibatch epochs on the workers; the
        other methods run full batch (``batch_size="auto"`` or None; a
        smaller batch is a ValueError).
        """
        from .._minimize import get_method
        from ._base import resolve_batch_size

        if get_method(method).kind == "first-order":
            return resolve_batch_size(est.batch_size, method, self.n)
        if est.batch_size not in ("auto", None) and est.batch_size < self.n:
            raise ValueError(
                f"solver {method!r} runs full batch on dask arrays; got batch_size="
                f"{est.batch_size!r} (use batch_size=None or 'auto')"
            )
        return None

    def column_means(self):
        """Exact column means of ``X``, chunk-wise (one round trip)."""
        return np.ascontiguousarray(self.chunks.weighted_sum(_colmean_part))

    def minimize(self, est, method, kernels, w0, tail, *, record=False, n_iter_no_change=None,
                 scg_exact=True, defaults=None, check_tail=None):  # fmt: skip
        """As :meth:`fastopt.models._data.InMemory.minimize`, on the workers."""
        from ..distributed._minimize import reducers
        from ._base import fit_parameters

        fg, gn, gn_diag = kernels
        batch = self.batch_size(est, method)
        if batch is not None:
            res, monitor = _minibatch(est, method, fg, w0, self.chunks, tail, batch,
                                      n_iter_no_change)  # fmt: skip
            return res, monitor, int(res.epochs)
        rfg, rgn, _, rdiag = reducers(self.chunks, fg, tail, gauss_newton=gn, diagonal=gn_diag)
        return fit_parameters(est, method, rfg, w0, (), rgn, rdiag, self.n, record=record,
                              scg_exact=scg_exact, defaults=defaults,
                              full_batch=True)  # fmt: skip

    def value(self, fn, w, tail):
        """``fn(w, X, Y, *tail)`` over all rows: the chunks' values weighted by their rows."""
        return float(self.chunks.weighted_sum(_value_part, fn, w, tail))


def check_network(est, method, dropout):
    """ValueError for what the MLPs cannot do on dask data (see the module docstring)."""
    name = type(est).__name__
    if dropout != 0.0 or est.batch_norm:
        raise ValueError(
            f"{name} on dask arrays: dropout and batch_norm are not supported "
            f"(got dropout={est.dropout!r}, batch_norm={est.batch_norm!r}); their masks and "
            "batch statistics are not sums over chunks"
        )
    if method == "kfac" or est.whiten:
        raise ValueError(
            f"{name} on dask arrays: solver='kfac' and whiten=True are not supported (got "
            f"solver={est.solver!r}, whiten={est.whiten!r}); they need the rows in memory"
        )


def _minibatch(est, method, fg, w0, chunks, tail, batch, n_iter_no_change):
    """A first-order minibatch fit on the workers: ``(res, monitor)``.

    The in-memory fit's :class:`fastopt.models._base.Monitor` records the
    epoch losses, stops early and shows progress.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from ..distributed import minimize
    from ._base import Monitor, seed_from, warn_if_gradient_above_tol

    options = {"batch_size": int(batch), "epochs": int(est.max_iter),
               "seed": seed_from(est.random_state)}  # fmt: skip
    options.update(est.solver_options or {})
    monitor = Monitor(chunks.n, batch, int(est.max_iter), est.verbose, type(est).__name__,
                      tol=float(est.tol), n_iter_no_change=n_iter_no_change)  # fmt: skip

    def callback(intermediate_result):
        monitor.end_epoch(float(intermediate_result.fun))

    try:
        res = minimize(fg, w0, chunks, args=tail, method=method, callback=callback,
                       options=options)  # fmt: skip
    finally:
        monitor.close()
    est.n_iter_ = int(res.epochs)
    if not res.success and res.status != 99:
        warnings.warn(
            f"{type(est).__name__}: solver {method!r} stopped: {res.message}",
            ConvergenceWarning,
            stacklevel=4,
        )
    elif res.status == EPOCHS and n_iter_no_change is not None:
        warnings.warn(
            f"{type(est).__name__}: solver {method!r} did not converge in "
            f"max_iter={est.max_iter} epochs ({res.message}) Increase max_iter, "
            "loosen tol or scale the features.",
            ConvergenceWarning,
            stacklevel=4,
        )
    elif res.status == EPOCHS:
        # all epochs run without early stopping: the in-memory fit's test of
        # the full-data gradient at the result (res.jac, reduced over chunks)
        warn_if_gradient_above_tol(est, method, res.jac, stacklevel=5)
    return res, monitor


# ---------------------------------------------------------------------------
# lazy predictions
# ---------------------------------------------------------------------------


def _call_block(block, est, name, names):
    # the block as the estimator was fitted: a frame with the fitted feature
    # names, else an array (the names were checked once, on the client, so
    # that the workers do not warn for every block)
    if names is not None and not hasattr(block, "columns"):
        import pandas as pd

        block = pd.DataFrame(block, columns=names, copy=False)
    elif names is None and hasattr(block, "columns"):
        block = block.to_numpy()
    return getattr(est, name)(block)


def lazy(method):
    """Decorate a prediction method: on dask ``X``, the method mapped over row blocks.

    ``X``: a dask array (its row chunks) or DataFrame (its partitions);
    scikit-learn's checks of the number of features and their names run
    once, here.  The output's shape and dtype come from the method on one
    row of zeros (a block of 0 rows would fail scikit-learn's validation).
    """

    @functools.wraps(method)
    def wrapper(self, X, *args, **kwargs):
        if not is_dask(X):
            return method(self, X, *args, **kwargs)
        check_is_fitted(self)
        if X.ndim != 2:
            raise ValueError(f"Expected 2D array, got X with shape {X.shape}")
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        _check_feature_names(self, _names_probe(X), reset=False)
        names = getattr(self, "feature_names_in_", None)
        name = method.__name__
        probe = np.asarray(_call_block(np.zeros((1, X.shape[1])), self, name, names))
        meta = np.empty((0,) + probe.shape[1:], dtype=probe.dtype)
        if is_dask_frame(X):
            return X.map_partitions(_call_block, self, name, names, meta=meta)
        X = X.rechunk({1: -1})
        if probe.ndim == 1:
            return X.map_blocks(_call_block, self, name, names, dtype=probe.dtype, drop_axis=1,
                                meta=meta)  # fmt: skip
        return X.map_blocks(_call_block, self, name, names, dtype=probe.dtype,
                            chunks=(X.chunks[0], probe.shape[1:]), meta=meta)  # fmt: skip

    return wrapper


def _as_array(a):
    """A dask array of ``a``'s values (a DataFrame's: row chunks of unknown size)."""
    return a.to_dask_array() if is_dask_frame(a) else a


def score(est, X, y, sample_weight=None):
    """Accuracy (classifiers) or R^2 (regressors); a lazy 0-d dask array on dask input."""
    if not is_dask(X, y):
        mixin = ClassifierMixin if isinstance(est, ClassifierMixin) else RegressorMixin
        return mixin.score(est, X, y, sample_weight=sample_weight)
    if sample_weight is not None:
        raise ValueError("score on dask arrays does not take sample_weight")
    pred = est.predict(X)
    y = _as_array(y)
    if isinstance(est, ClassifierMixin):
        return (pred == y).mean()
    # scikit-learn's r2_score, multioutput="uniform_average"
    u = ((y - pred) ** 2).sum(axis=0)
    v = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    return (1.0 - u / v).mean()
