r"""Multi-layer perceptrons with dropout and batch normalisation, by any fastopt method.

The network and its objective are described in
:mod:`fastopt.models._mlp_kernels`.  Parameter names follow scikit-learn's
``MLPClassifier``/``MLPRegressor``; ``alpha`` is the same L2 strength, with
the penalty :math:`\frac{\alpha}{2N}\sum_l \|W_l\|_F^2` scaled by the full
sample count :math:`N` in minibatch mode too (scikit-learn divides by the
batch size, which makes its minibatch objective differ from its full-batch
one).
"""

import numbers

import numpy as np
from scipy.special import expit, log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from . import _dask
from . import _mlp_kernels as mk
from ._base import check_common_params, seed_from
from ._data import fit_data
from ._kfac import fit_kfac
from ._linear import _check_real, _check_X
from ._natural import fit_natural

#: Default ``solver`` of the MLPs, chosen by ``benchmarks/models_compare.py``
#: (section 5): fit time of a (100,) ReLU network to the training loss that
#: scikit-learn's MLPClassifier (adam, defaults) reaches, one thread, the
#: 2-core development machine (each method with its usual defaults):
#:
#: ===========================  ==========  ========
#: method                       digits/16   MNIST-1D
#: ===========================  ==========  ========
#: rmsprop (minibatch 200)          0.13 s    0.32 s
#: lbfgs (full batch)               0.04 s    0.28 s
#: scg (full batch)                 0.15 s    0.54 s
#: adam (minibatch 200)             0.38 s    0.95 s
#: hessian-free (full batch)        1.08 s    4.41 s
#: nag, lr=1e-2                        -      0.92 s
#: adahessian, lr=1e-2                 -        -
#: scikit-learn (adam)              0.47 s    1.46 s
#: ===========================  ==========  ========
#:
#: ("-": not within 300 epochs; test accuracies are in the script's output.)
#: lbfgs (session 3's run; the other rows are from the run that chose the
#: default, the rmsprop and scg figures within 0.02 s of it) is faster on
#: these two small sets, as scikit-learn's docs say of its own lbfgs, but it
#: is not the default: its line search needs a deterministic objective, which
#: ``dropout > 0`` breaks, and a full-batch method's cost per step grows with
#: the data where a minibatch one's does not.
DEFAULT_SOLVER = "rmsprop"


def _check_layers(hidden_layer_sizes):
    sizes = (hidden_layer_sizes,) if isinstance(hidden_layer_sizes, numbers.Integral) else (
        hidden_layer_sizes
    )  # fmt: skip
    try:
        sizes = tuple(sizes)
    except TypeError:
        sizes = None
    if sizes is None or not all(
        isinstance(h, numbers.Integral) and not isinstance(h, bool) and h >= 1 for h in sizes
    ):
        raise ValueError(
            f"hidden_layer_sizes must be an int >= 1 or a sequence of them; "
            f"got {hidden_layer_sizes!r}"
        )
    return tuple(int(h) for h in sizes)


def glorot_init(sizes, activation, batch_norm, rng):
    """scikit-learn's initialisation (Glorot & Bengio 2010, uniform).

    Weights and biases uniform in :math:`\\pm\\sqrt{6/(a+b)}` (``2`` in
    place of 6 for the logistic activation); batch-normalised layers start
    with :math:`\\gamma = 1, \\beta = 0`.
    """
    factor = 2.0 if activation == "logistic" else 6.0
    parts = []
    nl = len(sizes) - 1
    for l in range(nl):
        a, b = sizes[l], sizes[l + 1]
        bound = np.sqrt(factor / (a + b))
        parts.append(rng.uniform(-bound, bound, a * b))
        if l < nl - 1 and batch_norm:
            parts += [np.ones(b), np.zeros(b)]
        else:
            parts.append(rng.uniform(-bound, bound, b))
    return np.concatenate(parts)


def _loss_value(w, X, Y, *tail):
    """The loss of the fit's ``fg`` kernel (:func:`~._mlp_kernels.fg_kernel`).

    ``tail`` is the kernel's (``sizes, activation, loss, lam, dropout,
    batch_norm``) and then the fit's ``dropout`` (which picks the kernel
    that the fit compiled).  ``mk.mlp_loss`` would compile a second forward
    pass (2.5 s in a cold process) for this one value.  Module level: dask
    ships it to the workers.
    """
    *tail, fit_dropout = tail
    return mk.fg_kernel(tail[5], fit_dropout)(w, X, Y, *tail)[0]


class _BaseMLP(BaseEstimator):
    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver=DEFAULT_SOLVER,
                 alpha=1e-4, batch_size="auto", max_iter=200, tol=1e-4, n_iter_no_change=10,
                 dropout=0.0, batch_norm=False, random_state=None, solver_options=None,
                 verbose=False, whiten=False, whiten_every=100,
                 whiten_eps=1e-2, whiten_input_eps=None):  # fmt: skip
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.random_state = random_state
        self.solver_options = solver_options
        self.verbose = verbose
        self.whiten = whiten
        self.whiten_every = whiten_every
        self.whiten_eps = whiten_eps
        self.whiten_input_eps = whiten_input_eps

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # random initialisation, minibatch order and dropout masks all depend
        # on random_state, which defaults to None as in scikit-learn
        tags.non_deterministic = True
        return tags

    def _fit_network(self, data, loss):
        """Fit the network on ``data`` (:mod:`fastopt.models._data`)."""
        method = check_common_params(self, extra=("kfac",))
        hidden = _check_layers(self.hidden_layer_sizes)
        if self.activation not in mk.ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(mk.ACTIVATIONS)}; got {self.activation!r}"
            )
        alpha = _check_real("alpha", self.alpha)
        dropout = _check_real("dropout", self.dropout)
        if not dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {self.dropout!r}")
        nic = self.n_iter_no_change
        if nic is not None and (
            isinstance(nic, bool) or not isinstance(nic, numbers.Integral) or nic < 1
        ):
            raise ValueError(f"n_iter_no_change must be None or an int >= 1; got {nic!r}")
        if not data.in_memory:
            _dask.check_network(self, method, dropout)
        n, p = data.n, data.p
        sizes = (p,) + hidden + (data.n_outputs,)
        rng = check_random_state(self.random_state)
        w0 = glorot_init(sizes, self.activation, bool(self.batch_norm), rng)
        # numba's generator (dropout masks) lives in the calling thread;
        # seeded here so that a fixed random_state repeats the fit
        mk.seed(seed_from(rng))
        act = mk.ACTIVATIONS[self.activation]
        bn = bool(self.batch_norm)
        tail = (sizes, act, loss, alpha / n, dropout, bn)
        if method == "kfac":
            if dropout > 0.0 or bn:
                raise ValueError(
                    "solver='kfac' supports neither dropout nor batch_norm (its Kronecker "
                    "factors model a dense layer's input and output-derivative statistics); "
                    "set dropout=0 and batch_norm=False"
                )
            if self.whiten:
                raise ValueError("whiten=True needs a first-order solver, not 'kfac'")
            res, monitor, n_iter = fit_kfac(self, w0, data.X, data.Y, sizes, act, loss,
                                            alpha / n, nic)  # fmt: skip
        elif self.whiten:
            res, monitor, n_iter = fit_natural(self, method, w0, data.X, data.Y, sizes, act,
                                               loss, alpha / n, dropout, nic)  # fmt: skip
        else:
            res, monitor, n_iter = data.minimize(
                self, method, (mk.fg_kernel(bn, dropout), mk.mlp_gn, mk.mlp_gn_diag), w0, tail,
                record=True, n_iter_no_change=nic, scg_exact=dropout > 0.0,
                check_tail=tail[:4] + (0.0, bn),
            )  # fmt: skip
        w = res.x
        self.params_ = w
        self.sizes_ = sizes
        self.n_layers_ = len(sizes)
        self.n_outputs_ = sizes[-1]
        self.n_iter_ = n_iter
        self.t_ = int(res.nit) * (n if monitor.batch_size is None else monitor.batch_size)
        self.result_ = res
        if monitor.batch_size is not None:
            self.loss_curve_ = list(monitor.curve)
        # batch statistics of all of X (the rows are in memory with batch_norm)
        X_stats = data.X if bn else np.zeros((1, p))
        self.bn_mean_, self.bn_var_ = mk.mlp_batch_stats(w, X_stats, sizes, act, bn)
        # the loss without dropout, batch statistics of all of X (= bn_mean_, bn_var_)
        self.loss_ = data.value(_loss_value, w, (sizes, act, loss, alpha / n, 0.0, bn, dropout))
        self._unpack(w, sizes, bn)
        return self

    def _unpack(self, w, sizes, bn):
        coefs, intercepts, gammas = [], [], []
        off = 0
        nl = len(sizes) - 1
        for l in range(nl):
            a, b = sizes[l], sizes[l + 1]
            coefs.append(w[off : off + a * b].reshape(a, b).copy())
            off += a * b
            if l < nl - 1 and bn:
                gammas.append(w[off : off + b].copy())
                off += b
            intercepts.append(w[off : off + b].copy())
            off += b
        self.coefs_ = coefs
        self.intercepts_ = intercepts
        self.bn_scale_ = gammas

    def _outputs(self, X):
        check_is_fitted(self)
        X = _check_X(self, X, reset=False)
        return mk.mlp_predict(self.params_, X, self.sizes_, mk.ACTIVATIONS[self.activation],
                              bool(self.batch_norm), self.bn_mean_, self.bn_var_)  # fmt: skip


_MLP_DOC = r"""
    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default=(100,)
        Widths of the hidden layers (``()``: a linear model).
    activation : {"relu", "tanh", "logistic", "identity"}, default="relu"
    solver : str, default="rmsprop"
        Any name of :data:`fastopt.METHODS`, or ``"kfac"`` (K-FAC, Martens &
        Grosse 2015, see :mod:`fastopt.models._kfac`; its options in
        ``solver_options``; no dropout or batch normalisation); the default
        was chosen by ``benchmarks/models_compare.py``.  ``hessian-free`` gets the exact
        Gauss-Newton product as ``gauss_newton``, ``adahessian`` as
        ``hessp``, and ``scg`` as ``hessp`` with dropout (else its own finite
        differences of gradients, which cost less).
    alpha : float, default=1e-4
        L2 strength on the weight matrices (scikit-learn's ``alpha``).
    batch_size : int, "auto" or None, default="auto"
        ``"auto"``: ``min(200, n_samples)`` for first-order methods and
        AdaHessian, full batch for ``scg`` and ``hessian-free``; None: full
        batch.
    max_iter : int, default=200
        Epochs (minibatch) or iterations (full batch).
    tol : float, default=1e-4
        Minibatch: the improvement of the epoch loss that resets the
        ``n_iter_no_change`` count; full batch: the gradient inf-norm test.
    n_iter_no_change : int or None, default=10
        Minibatch: stop after this many epochs without an improvement of
        ``tol``; None: run all ``max_iter`` epochs.
    dropout : float, default=0.0
        Probability of dropping a hidden unit during training (inverted
        dropout; Srivastava et al. 2014).  The curvature products of the
        second-order methods use the network without dropout.
    batch_norm : bool, default=False
        Batch-normalise every hidden layer before its activation (Ioffe &
        Szegedy 2015), with the batch's statistics in training; prediction
        uses the statistics of the whole training set at the fitted weights.
    random_state : int, RandomState or None, default=None
        Seeds the initialisation, the minibatch order and the dropout masks.
    solver_options : dict or None, default=None
        Options of the method, e.g. ``{"learning_rate": 1e-3}``.
    verbose : bool, default=False
        Print a progress bar with the loss.
    whiten : bool, default=False
        Natural neural network (PRONG, Desjardins et al. 2015, see
        :mod:`fastopt.models._natural`): every layer's input whitened, the
        first-order ``solver`` run on the whitened parametrisation (not with
        ``batch_norm``).
    whiten_every : int, default=100
        Updates between re-estimations of the whitening (the paper's ``T``).
    whiten_eps : float, default=1e-2
        Added to the input covariance's eigenvalues before the inverse square
        root (the paper's :math:`\epsilon`).  The largest stable learning
        rate grows with it (the low-variance directions' steps are scaled by
        up to :math:`1/\epsilon`): tune the two together.  Used for the
        hidden layers' inputs, and for the network's input unless
        ``whiten_input_eps`` is set.
    whiten_input_eps : float or None, default=None
        :math:`\epsilon` of the first layer's whitening (the network's input,
        the data); None: ``whiten_eps``.  The data's distribution does not
        move between re-estimations, the hidden layers' inputs do, so the
        data's whitening can be sharper (a smaller :math:`\epsilon`) at a
        rate that the hidden layers' :math:`\epsilon` keeps stable.

    Attributes
    ----------
    coefs_ : list of ndarray
        ``coefs_[l]`` has shape ``(sizes[l], sizes[l+1])``.
    intercepts_ : list of ndarray
        Biases (:math:`\beta` for batch-normalised layers).
    bn_scale_, bn_mean_, bn_var_ : list of ndarray, ndarray, ndarray
        Batch normalisation's :math:`\gamma` and the population statistics
        (row ``l``: hidden layer ``l``).
    loss_ : float
        The objective at the solution on the training data, without dropout.
    loss_curve_ : list of float
        Minibatch mode: the mean batch loss of every epoch.
    n_iter_ : int
        Epochs (minibatch) or iterations (full batch) run.
    t_ : int
        Training samples seen by the solver.
    n_layers_, n_outputs_, n_features_in_, params_, result_
"""


class MLPClassifier(ClassifierMixin, _BaseMLP):
    # the docstring is assembled below the class: the parameters are shared
    # with MLPRegressor

    score = _dask.score

    def fit(self, X, y):
        """Fit the network to ``X`` (n_samples, n_features) and labels ``y``."""
        with fit_data(self, X, y, "indicator") as data:
            K = len(self.classes_)
            self.out_activation_ = "logistic" if K == 2 else "softmax"
            return self._fit_network(data, mk.LOGISTIC if K == 2 else mk.SOFTMAX)

    @_dask.lazy
    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes)."""
        O = self._outputs(X)
        if O.shape[1] == 1:
            # expit(-z), not 1 - expit(z): no cancellation for confident rows
            z = O[:, 0]
            return np.column_stack([expit(-z), expit(z)])
        return softmax(O, axis=1)

    @_dask.lazy
    def predict_log_proba(self, X):
        """Logarithms of :meth:`predict_proba`, computed without underflow."""
        O = self._outputs(X)
        if O.shape[1] == 1:
            z = O[:, 0]
            return np.column_stack([-np.logaddexp(0.0, z), -np.logaddexp(0.0, -z)])
        return log_softmax(O, axis=1)

    @_dask.lazy
    def predict(self, X):
        """Predicted class labels."""
        O = self._outputs(X)
        idx = (O[:, 0] > 0).astype(np.intp) if O.shape[1] == 1 else O.argmax(axis=1)
        return self.classes_[idx]


class MLPRegressor(RegressorMixin, _BaseMLP):
    # the docstring is assembled below the class (see MLPClassifier)

    score = _dask.score

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def fit(self, X, y):
        """Fit the network to ``X`` (n_samples, n_features) and ``y`` (n_samples[, n_targets])."""
        with fit_data(self, X, y, "numeric") as data:
            self._y_1d = data.y_ndim == 1
            self.out_activation_ = "identity"
            return self._fit_network(data, mk.SQUARED)

    @_dask.lazy
    def predict(self, X):
        """Predicted targets, shape (n_samples,) or (n_samples, n_targets)."""
        O = self._outputs(X)
        return O[:, 0] if self._y_1d else O


MLPClassifier.__doc__ = (
    r"""Multi-layer perceptron classifier, fitted by a fastopt method.

    Minimizes the mean cross-entropy (a logistic output unit for two
    classes, softmax for more) plus an L2 penalty on the weight matrices:

    .. math::

        f(w) = -\frac1n \sum_{i=1}^n \log p_w(y_i \mid x_i)
               + \frac{\alpha}{2n} \sum_l \|W_l\|_F^2.
"""
    + _MLP_DOC
    + r"""    classes_ : ndarray of shape (n_classes,)
    out_activation_ : {"logistic", "softmax"}

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from fastopt.models import MLPClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = MLPClassifier((64,), max_iter=30, random_state=0).fit(X / 16, y)
    >>> bool(clf.score(X / 16, y) > 0.97)
    True
"""
)

MLPRegressor.__doc__ = (
    r"""Multi-layer perceptron regressor (identity output), fitted by a fastopt method.

    Minimizes

    .. math::

        f(w) = \frac{1}{2n} \sum_{i=1}^n \|y_i - o_w(x_i)\|^2
               + \frac{\alpha}{2n} \sum_l \|W_l\|_F^2

    (scikit-learn's loss for one target; with several targets scikit-learn's
    reported loss also divides by their number while its gradient does not,
    here both are those of this :math:`f`).
"""
    + _MLP_DOC
    + r"""    out_activation_ : "identity"

    Examples
    --------
    >>> import numpy as np
    >>> from fastopt.models import MLPRegressor
    >>> X = np.linspace(-1, 1, 200).reshape(-1, 1)
    >>> reg = MLPRegressor((32,), activation="tanh", solver="hessian-free",
    ...                    max_iter=50, random_state=0).fit(X, np.sin(3 * X[:, 0]))
    >>> bool(reg.score(X, np.sin(3 * X[:, 0])) > 0.99)
    True
"""
)
