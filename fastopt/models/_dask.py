"""The estimators on dask arrays: ``fit`` on the workers, lazy predictions.

``fit(X, y)`` with dask arrays hands the estimator to :func:`fit` here (one
line in each ``fit``): the rows of ``X`` and ``y`` are validated, converted
and encoded on the workers that compute them (:class:`fastopt.distributed.Chunks`),
and the solver runs on the client with the distributed reductions of
:mod:`fastopt.distributed` over the same compiled kernels as in memory:

* full batch (``lbfgs``, ``scg``, ``hessian-free``, ``adahessian`` and any
  method with ``batch_size=None``): one round trip per evaluation of the
  loss and gradient, the Gauss-Newton product or its diagonal; the linear
  models' centring means are computed chunk-wise (exact column means);
* minibatch (a first-order rule with a ``batch_size``): the epochs run on the
  workers, part after part (see :mod:`fastopt.distributed._minimize` for the
  batch order).

Predictions on a dask array are lazy dask arrays (dask-ml's convention): the
estimator's own method mapped over the row blocks.  Not on dask arrays yet:
the MLPs' ``dropout`` and ``batch_norm`` (batch statistics and dropout masks
are not sums over chunks), second-order methods in minibatch mode, and
``sample_weight`` in ``score``.
"""

import functools
import numbers

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.utils import check_array
from sklearn.utils.multiclass import check_classification_targets

from .._status import EPOCHS


def is_dask(*arrays):
    """Whether any of ``arrays`` is a dask array (dask is not imported otherwise)."""
    return any(type(a).__module__.split(".")[0] == "dask" and hasattr(a, "chunks")
               for a in arrays)  # fmt: skip


def _require_dask(est, X, y):
    if not (is_dask(X) and is_dask(y)):
        raise TypeError(
            f"{type(est).__name__}.fit: X and y must both be dask arrays or neither; got "
            f"{type(X).__name__} and {type(y).__name__}"
        )
    if X.ndim != 2:
        raise ValueError(f"Expected 2D array, got X with shape {X.shape}")
    if y.ndim not in (1, 2):
        raise ValueError(f"y must be 1-D or 2-D; got shape {y.shape}")
    from ..distributed._chunks import row_chunks

    row_chunks((X, y), ("X", "y"))  # before any work on y (its classes)


# ---------------------------------------------------------------------------
# on the workers: one row block to the kernels' arrays
# ---------------------------------------------------------------------------


def _prepare(name, targets, classes, Xb, yb):
    """``(X, Y)`` of one row block: float64, C-ordered, finite, ``Y`` encoded.

    ``targets``: "numeric", "binary01" (column of 0/1 for classes[1]),
    "onehot", "pm1" (+1/-1 columns, one-vs-rest for more than two classes).
    The checks are scikit-learn's (``check_array``), so a NaN in a chunk
    raises the same error as in memory.
    """
    X = check_array(Xb, dtype=np.float64, order="C", estimator=name, input_name="X")
    if not X.flags.writeable:
        X = X.copy()
    if targets == "numeric":
        y = check_array(yb, dtype=np.float64, ensure_2d=False, estimator=name, input_name="y")
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
    else:
        y = check_array(yb, dtype=None, ensure_2d=False, ensure_all_finite=False,
                        estimator=name, input_name="y").ravel()  # fmt: skip
        idx = np.searchsorted(classes, y)
        K = len(classes)
        if targets == "binary01":
            Y = (idx == 1).astype(np.float64).reshape(-1, 1)
        elif targets == "onehot":
            Y = np.zeros((y.shape[0], K))
            Y[np.arange(y.shape[0]), idx] = 1.0
        elif K == 2:  # pm1, binary
            Y = np.where(idx == 1, 1.0, -1.0).reshape(-1, 1)
        else:
            Y = -np.ones((y.shape[0], K))
            Y[np.arange(y.shape[0]), idx] = 1.0
    return X, np.require(Y, dtype=np.float64, requirements=["C", "W"])


def _colmean_part(part):
    return part[0].mean(axis=0)


def _classes(est, y):
    import dask.array as da

    classes = np.unique(da.unique(y.ravel()).compute())
    check_classification_targets(classes)
    if len(classes) < 2:
        raise ValueError(
            f"{type(est).__name__} needs samples of at least 2 classes in the data, "
            f"but the data contains only one class: {classes[0]!r}"
        )
    return classes


def _chunks(est, X, y, targets, classes=None):
    from functools import partial

    from ..distributed import Chunks

    prepare = partial(_prepare, type(est).__name__, targets, classes)
    return Chunks((X, y), names=("X", "y"), prepare=prepare)


# ---------------------------------------------------------------------------
# fit
# ---------------------------------------------------------------------------


def fit(est, X, y):
    """Fit ``est`` on dask arrays ``X``, ``y`` (see the module docstring)."""
    from ._linear import LinearRegression, LinearSVC, LogisticRegression
    from ._mlp import MLPClassifier, MLPRegressor

    _require_dask(est, X, y)
    fitters = {
        LinearRegression: _fit_linreg,
        LogisticRegression: _fit_logreg,
        LinearSVC: _fit_svc,
        MLPClassifier: _fit_mlp_classifier,
        MLPRegressor: _fit_mlp_regressor,
    }
    for cls in type(est).__mro__:
        if cls in fitters:
            return fitters[cls](est, X, y)
    raise TypeError(f"{type(est).__name__} does not take dask arrays")  # pragma: no cover


def _set_features(est, X):
    est.n_features_in_ = int(X.shape[1])
    if hasattr(est, "feature_names_in_"):
        del est.feature_names_in_


def _fit_linreg(est, X, y):
    from . import _linear_kernels as lk
    from ._linear import _check_real

    alpha = _check_real("alpha", est.alpha)
    _set_features(est, X)
    chunks = _chunks(est, X, y, "numeric")
    try:
        K = 1 if y.ndim == 1 else int(y.shape[1])
        W, b = _fit_linear(est, chunks, K, alpha / chunks.n, 1.0, False, lk.SQUARED)
    finally:
        chunks.close()
    if y.ndim == 1:
        est.coef_ = W[:, 0].copy()
        est.intercept_ = float(b[0])
    else:
        est.coef_ = np.ascontiguousarray(W.T)
        est.intercept_ = b
    return est


def _fit_logreg(est, X, y):
    from . import _linear_kernels as lk
    from ._linear import _check_real

    C = _check_real("C", est.C, strict=True, allow_inf=True)
    _set_features(est, X)
    classes = _classes(est, y)
    est.classes_ = classes
    K = len(classes)
    chunks = _chunks(est, X, y, "binary01" if K == 2 else "onehot", classes)
    try:
        loss = lk.LOGISTIC if K == 2 else lk.SOFTMAX
        W, b = _fit_linear(est, chunks, 1 if K == 2 else K, 1.0 / (C * chunks.n), 1.0, False,
                           loss)  # fmt: skip
    finally:
        chunks.close()
    if K > 2 and est.fit_intercept:
        b = b - b.mean()
    est.coef_ = np.ascontiguousarray(W.T)
    est.intercept_ = b
    return est


def _fit_svc(est, X, y):
    from . import _linear_kernels as lk
    from ._linear import _check_real

    C = _check_real("C", est.C, strict=True)
    s = _check_real("intercept_scaling", est.intercept_scaling, strict=True)
    _set_features(est, X)
    classes = _classes(est, y)
    est.classes_ = classes
    K = len(classes)
    chunks = _chunks(est, X, y, "pm1", classes)
    try:
        W, b = _fit_linear(est, chunks, 1 if K == 2 else K, 1.0 / (C * chunks.n), s, True,
                           lk.SQUARED_HINGE)  # fmt: skip
    finally:
        chunks.close()
    est.coef_ = np.ascontiguousarray(W.T)
    est.intercept_ = b
    return est


def _resolve(est, method, n):
    """The minibatch size on dask arrays (None: full batch); see the module docstring."""
    from .._minimize import get_method
    from ._base import resolve_batch_size

    first_order = get_method(method).kind == "first-order"
    if not first_order:
        if est.batch_size not in ("auto", None) and est.batch_size < n:
            raise ValueError(
                f"solver {method!r} runs full batch on dask arrays; got batch_size="
                f"{est.batch_size!r} (use batch_size=None or 'auto')"
            )
        return None
    return resolve_batch_size(est.batch_size, method, n)


def _fit_linear(est, chunks, K, lam, s, penalize_b, loss):
    """Mirror of ``_LinearModel._fit_linear`` with the distributed reductions."""
    from ..distributed._minimize import reducers
    from . import _linear_kernels as lk
    from ._base import LINEAR_LBFGS, check_common_params, fit_parameters
    from ._linear import CENTERED_METHODS

    method = check_common_params(est)
    p = int(est.n_features_in_)
    n = chunks.n
    fit_intercept = bool(est.fit_intercept)
    w0 = np.zeros(p * K + (K if fit_intercept else 0))
    tail = (float(lam), fit_intercept, float(s), bool(penalize_b), int(loss))
    batch = _resolve(est, method, n)
    if batch is not None:
        res = _minibatch(est, method, lk.linear_fg, w0, chunks, tail, batch, None)
    else:
        defaults = dict(LINEAR_LBFGS) if method == "lbfgs" else {}
        kernels = (lk.linear_fg, lk.linear_gn, lk.linear_gn_diag)
        mu = None
        if fit_intercept and method in CENTERED_METHODS:
            # exact column means, chunk-wise (in memory: a strided sample of
            # rows; the centred coordinates are exact for any mu)
            mu = np.ascontiguousarray(chunks.weighted_sum(_colmean_part))
            tail = (*tail, mu)
            kernels = (lk.centered_fg, lk.centered_gn, lk.centered_gn_diag)
            defaults["gtol"] = float(est.tol) / (1.0 + float(np.max(np.abs(mu))) / float(s))
        fg, gn, _, diag = reducers(chunks, kernels[0], tail, gauss_newton=kernels[1],
                                   diagonal=kernels[2])  # fmt: skip
        res, _, n_iter = fit_parameters(
            est, method, fg, w0, (), gn, diag, n, scg_exact=K == 1, defaults=defaults or None
        )
        if mu is not None:
            res.x = lk.from_centered(res.x, mu, float(s))
            if "jac" in res:
                res.jac = lk.grad_from_centered(res.jac, mu, float(s))
        est.n_iter_ = n_iter
    W = res.x[: p * K].reshape(p, K)
    b = s * res.x[p * K :] if fit_intercept else np.zeros(K)
    est.loss_ = float(res.fun)
    est.result_ = res
    return W, b


def _minibatch(est, method, fg, w0, chunks, tail, batch, n_iter_no_change, record=None):
    """A first-order minibatch fit on the workers; sets ``n_iter_``; returns the result."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from ..distributed import minimize
    from ._base import seed_from

    options = {"batch_size": int(batch), "epochs": int(est.max_iter),
               "seed": seed_from(est.random_state)}  # fmt: skip
    options.update(est.solver_options or {})
    curve = [] if record is None else record
    best = [np.inf, 0]

    def monitor(intermediate_result):
        loss = float(intermediate_result.fun)
        curve.append(loss)
        if n_iter_no_change is None:
            return
        if loss > best[0] - float(est.tol):
            best[1] += 1
        else:
            best[1] = 0
        best[0] = min(best[0], loss)
        if best[1] >= n_iter_no_change:
            raise StopIteration

    res = minimize(fg, w0, chunks, args=tail, method=method, callback=monitor, options=options)
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
    return res


def _fit_mlp_classifier(est, X, y):
    from . import _mlp_kernels as mk

    _set_features(est, X)
    classes = _classes(est, y)
    est.classes_ = classes
    K = len(classes)
    est.out_activation_ = "logistic" if K == 2 else "softmax"
    chunks = _chunks(est, X, y, "binary01" if K == 2 else "onehot", classes)
    try:
        _fit_network(est, chunks, 1 if K == 2 else K, mk.LOGISTIC if K == 2 else mk.SOFTMAX)
    finally:
        chunks.close()
    return est


def _fit_mlp_regressor(est, X, y):
    from . import _mlp_kernels as mk

    _set_features(est, X)
    est._y_1d = y.ndim == 1
    est.out_activation_ = "identity"
    chunks = _chunks(est, X, y, "numeric")
    try:
        _fit_network(est, chunks, 1 if y.ndim == 1 else int(y.shape[1]), mk.SQUARED)
    finally:
        chunks.close()
    return est


def _fit_network(est, chunks, K, loss):
    """Mirror of ``_BaseMLP._fit_network`` with the distributed reductions."""
    from sklearn.utils import check_random_state

    from ..distributed._minimize import _fg_part, reducers
    from . import _mlp_kernels as mk
    from ._base import check_common_params, fit_parameters
    from ._linear import _check_real
    from ._mlp import _check_layers, glorot_init

    method = check_common_params(est)
    hidden = _check_layers(est.hidden_layer_sizes)
    if est.activation not in mk.ACTIVATIONS:
        raise ValueError(
            f"activation must be one of {sorted(mk.ACTIVATIONS)}; got {est.activation!r}"
        )
    alpha = _check_real("alpha", est.alpha)
    if est.dropout != 0.0 or est.batch_norm:
        raise ValueError(
            f"{type(est).__name__} on dask arrays: dropout and batch_norm are not supported "
            f"(got dropout={est.dropout!r}, batch_norm={est.batch_norm!r}); their masks and "
            "batch statistics are not sums over chunks"
        )
    nic = est.n_iter_no_change
    if nic is not None and (
        isinstance(nic, bool) or not isinstance(nic, numbers.Integral) or nic < 1
    ):
        raise ValueError(f"n_iter_no_change must be None or an int >= 1; got {nic!r}")
    n = chunks.n
    p = int(est.n_features_in_)
    sizes = (p,) + hidden + (K,)
    rng = check_random_state(est.random_state)
    w0 = glorot_init(sizes, est.activation, False, rng)
    act = mk.ACTIVATIONS[est.activation]
    tail = (sizes, act, loss, alpha / n, 0.0, False)
    batch = _resolve(est, method, n)
    curve = []
    if batch is not None:
        res = _minibatch(est, method, mk.mlp_fg, w0, chunks, tail, batch, nic, record=curve)
        n_used = batch
    else:
        fg, gn, _, diag = reducers(chunks, mk.mlp_fg, tail, gauss_newton=mk.mlp_gn,
                                   diagonal=mk.mlp_gn_diag)  # fmt: skip
        res, _, n_iter = fit_parameters(est, method, fg, w0, (), gn, diag, n,
                                        scg_exact=False)  # fmt: skip
        est.n_iter_ = n_iter
        n_used = n
    w = res.x
    est.params_ = w
    est.sizes_ = sizes
    est.n_layers_ = len(sizes)
    est.n_outputs_ = sizes[-1]
    est.t_ = int(res.nit) * n_used
    est.result_ = res
    if batch is not None:
        est.loss_curve_ = curve
    est.bn_mean_, est.bn_var_ = mk.mlp_batch_stats(w, np.zeros((1, p)), sizes, act, False)
    est.loss_ = float(chunks.weighted_sum(_fg_part, mk.mlp_fg, w, tail)[0])
    est._unpack(w, sizes, False)
    return est


# ---------------------------------------------------------------------------
# lazy predictions
# ---------------------------------------------------------------------------


def _call_block(block, est, name):
    return getattr(est, name)(block)


def lazy(method):
    """Decorate a prediction method: on a dask ``X``, the method mapped over row blocks.

    The output's shape and dtype come from the method on one row of zeros
    (a dask array of 0 rows would fail scikit-learn's validation).
    """

    @functools.wraps(method)
    def wrapper(self, X, *args, **kwargs):
        if not is_dask(X):
            return method(self, X, *args, **kwargs)
        if X.ndim != 2:
            raise ValueError(f"Expected 2D array, got X with shape {X.shape}")
        X = X.rechunk({1: -1})
        probe = np.asarray(method(self, np.zeros((1, X.shape[1]))))
        name = method.__name__
        meta = np.empty((0,) + probe.shape[1:], dtype=probe.dtype)
        if probe.ndim == 1:
            return X.map_blocks(_call_block, self, name, dtype=probe.dtype, drop_axis=1,
                                meta=meta)  # fmt: skip
        return X.map_blocks(_call_block, self, name, dtype=probe.dtype,
                            chunks=(X.chunks[0], probe.shape[1:]), meta=meta)  # fmt: skip

    return wrapper


def score(est, X, y, sample_weight=None):
    """Accuracy (classifiers) or R^2 (regressors); a lazy 0-d dask array on dask input."""
    if not is_dask(X, y):
        mixin = ClassifierMixin if isinstance(est, ClassifierMixin) else RegressorMixin
        return mixin.score(est, X, y, sample_weight=sample_weight)
    if sample_weight is not None:
        raise ValueError("score on dask arrays does not take sample_weight")
    pred = est.predict(X)
    if isinstance(est, ClassifierMixin):
        return (pred == y).mean()
    # scikit-learn's r2_score, multioutput="uniform_average"
    u = ((y - pred) ** 2).sum(axis=0)
    v = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    return (1.0 - u / v).mean()
