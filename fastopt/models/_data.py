"""The rows an estimator is fitted on, in this process or on dask workers.

Every estimator's ``fit`` calls :func:`fit_data` once: it validates ``X`` and
``y`` (scikit-learn's checks, ``n_features_in_``, ``feature_names_in_``),
finds the classes of a classifier and encodes the targets as the kernels'
columns ``Y``, and returns an object with one interface for both places the
rows can be:

* :class:`InMemory`: NumPy arrays here (``X``, ``Y``);
* :class:`fastopt.models._dask.OnWorkers`: row chunks of dask arrays or
  DataFrames validated and encoded on the workers that hold them.

The estimator then builds its parameters and kernels once and hands them to
``data.minimize`` (the solver with the kernels on all rows) and
``data.value`` (a kernel's value at the solution).  The target codings and
the class check below are the only copies: the workers call them on every
chunk.
"""

import numpy as np
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets

from ._base import fit_parameters, resolve_batch_size, validate_data

_NO_Y = object()


def check_X(est, X, reset, y=_NO_Y, **kwargs):
    """float64, C-ordered, finite ``X`` (and ``y``); a writeable copy if read-only.

    The kernels are compiled for writeable arrays; a read-only input (a
    memory map, say) would compile a second copy of every solver loop.
    ``fit`` passes ``y`` (even None: scikit-learn then raises its "requires
    y" error); ``predict`` does not.
    """
    if y is _NO_Y:
        X = validate_data(est, X, reset=reset, dtype=np.float64, order="C")
    else:
        X, y = validate_data(est, X, y, reset=reset, dtype=np.float64, order="C", **kwargs)
    if not X.flags.writeable:
        X = X.copy()
    return X if y is _NO_Y else (X, y)


# ---------------------------------------------------------------------------
# targets
# ---------------------------------------------------------------------------


def check_classes(est, classes):
    """``classes`` (sorted unique labels) if there are at least two; else ValueError."""
    if len(classes) < 2:
        raise ValueError(
            f"{type(est).__name__} needs samples of at least 2 classes in the data, "
            f"but the data contains only one class: {classes[0]!r}"
        )
    return classes


def _indicator(idx, K):
    # the logistic and softmax losses: one 0/1 column for two classes (the
    # second class is 1), one-hot rows for more
    if K == 2:
        return (idx == 1).astype(np.float64).reshape(-1, 1)
    Y = np.zeros((idx.shape[0], K))
    Y[np.arange(idx.shape[0]), idx] = 1.0
    return Y


def _sign(idx, K):
    # the hinge losses: one +1/-1 column for two classes, one-vs-rest columns
    # for more
    if K == 2:
        return np.where(idx == 1, 1.0, -1.0).reshape(-1, 1)
    Y = -np.ones((idx.shape[0], K))
    Y[np.arange(idx.shape[0]), idx] = 1.0
    return Y


#: target codings of the classifiers: ``CODINGS[name](idx, n_classes) -> Y``
#: from class indices (positions in ``classes_``)
CODINGS = {"indicator": _indicator, "sign": _sign}


def encode(idx, n_classes, coding):
    """The kernels' ``Y`` of class indices ``idx`` (positions in ``classes_``).

    ``coding``: a name of :data:`CODINGS`.  float64, C-ordered, writeable.
    """
    return np.require(CODINGS[coding](idx, n_classes), dtype=np.float64,
                      requirements=["C", "W"])  # fmt: skip


def columns(y):
    """A regressor's ``Y``: ``y`` as columns, float64, C-ordered, writeable."""
    Y = y.reshape(-1, 1) if y.ndim == 1 else y
    # writeable too: a read-only y (a memory map) would type as another
    # array and compile the solver loop a second time
    return np.require(Y, dtype=np.float64, requirements=["C", "W"])


def classes_of(est, y):
    """scikit-learn's label checks; sets ``est.classes_``; returns class indices."""
    check_classification_targets(y)
    enc = LabelEncoder()
    yi = enc.fit_transform(y)
    est.classes_ = check_classes(est, enc.classes_)
    return yi


# ---------------------------------------------------------------------------
# the rows
# ---------------------------------------------------------------------------


def fit_data(est, X, y, coding):
    """Validated, encoded rows of ``fit(X, y)``: :class:`InMemory` or on dask workers.

    ``coding``: ``"numeric"`` for a regressor, ``"indicator"`` or ``"sign"``
    (:data:`CODINGS`) for a classifier, which gets ``classes_`` here.  Use
    the result as a context manager (dask chunks are released at the end).
    """
    from . import _dask

    if _dask.is_dask(X, y):
        return _dask.OnWorkers(est, X, y, coding)
    if coding == "numeric":
        X, y = check_X(est, X, reset=True, y=y, multi_output=True, y_numeric=True)
        Y = columns(y)
    else:
        X, y = check_X(est, X, reset=True, y=y)
        Y = encode(classes_of(est, y), len(est.classes_), coding)
    return InMemory(X, Y, y.ndim)


class InMemory:
    """``X`` (n, p) and the encoded targets ``Y`` (n, k) in this process.

    Attributes
    ----------
    n, p, n_outputs : int
        Rows, features and target columns.
    y_ndim : int
        ``y.ndim`` as given to ``fit`` (a regressor returns 1-D predictions
        for a 1-D ``y``).
    """

    in_memory = True

    def __init__(self, X, Y, y_ndim):
        self.X, self.Y = X, Y
        self.n, self.p = X.shape
        self.n_outputs = Y.shape[1]
        self.y_ndim = int(y_ndim)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def batch_size(self, est, method):
        """The minibatch size of ``est`` with ``method`` (None: full batch)."""
        return resolve_batch_size(est.batch_size, method, self.n)

    def column_means(self, rows=4096):
        """Column means of ``X`` from at most about ``rows`` evenly spaced rows.

        The linear models' centred coordinates are exact for any means; they
        only have to be near the means to help, so a large ``X`` is not read
        in full for them.
        """
        step = max(1, self.n // rows)
        return np.ascontiguousarray(self.X[::step].mean(axis=0))

    def minimize(self, est, method, kernels, w0, tail, *, record=False, n_iter_no_change=None,
                 scg_exact=True, defaults=None, check_tail=None):  # fmt: skip
        """:func:`fastopt.models._base.fit_parameters` of ``kernels(w, X, Y, *tail)``.

        ``kernels = (fg, gn, gn_diag)``; ``check_tail`` replaces ``tail`` in
        the final gradient test of a minibatch run.  Returns ``(res,
        monitor, n_iter)``; ``monitor.batch_size`` and ``monitor.curve``
        (the epoch losses of a minibatch run).
        """
        fg, gn, gn_diag = kernels
        args = (self.X, self.Y, *tail)
        check = None if check_tail is None else (self.X, self.Y, *check_tail)
        return fit_parameters(est, method, fg, w0, args, gn, gn_diag, self.n, record=record,
                              n_iter_no_change=n_iter_no_change, scg_exact=scg_exact,
                              defaults=defaults, check_args=check)  # fmt: skip

    def value(self, fn, w, tail):
        """``fn(w, X, Y, *tail)`` as a float."""
        return float(fn(w, self.X, self.Y, *tail))
