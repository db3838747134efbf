r"""A convolutional network classifier (1-D or 2-D), fitted by a fastopt method.

The network and its kernels are described in
:mod:`fastopt.models._conv_kernels`; fitting goes through the same
:func:`~fastopt.models._base.fit_parameters` as the MLPs.
"""

import numbers

import numpy as np
from scipy.special import expit, log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from . import _conv_kernels as ck
from . import _mlp_kernels as mk
from ._base import check_common_params, fit_parameters, seed_from
from ._data import classes_of, encode
from ._linear import _check_real, _check_X
from ._mlp import _check_layers

#: methods that need the model's curvature products, which the ConvNet does
#: not provide (its curvature would need a Gauss-Newton product through the
#: convolutions and pooling)
_NEEDS_PRODUCTS = frozenset({"hessian-free", "adahessian"})
#: rows per forward pass in ``predict``: bounds the im2col buffers' memory
_PREDICT_CHUNK = 2048


def _check_int_tuple(name, value, length=None):
    try:
        t = tuple(value)
    except TypeError:
        t = None
    if (
        t is None
        or (length is not None and len(t) not in length)
        or not all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1 for v in t
        )
    ):
        raise ValueError(f"{name} must be a tuple of ints >= 1; got {value!r}")
    return tuple(int(v) for v in t)


class ConvNetClassifier(ClassifierMixin, BaseEstimator):
    r"""Convolutional network classifier (1-D or 2-D), fitted by a fastopt method.

    Convolution blocks (stride-1 convolution, ReLU, max pooling) and a dense
    ReLU head with dropout, trained on the mean cross-entropy (softmax; a
    logistic output unit for two classes) plus an L2 penalty on the filters
    and weight matrices:

    .. math::

        f(w) = -\frac1n \sum_{i=1}^n \log p_w(y_i \mid x_i)
               + \frac{\alpha}{2n} \sum_l \|K_l\|^2 .

    Each row of ``X`` is one sample, flattened channels-first in C order
    (torch's layout): shape ``(n_samples, n_channels * prod(input_shape))``.

    Parameters
    ----------
    input_shape : int, tuple of 1 or 2 ints, or None, default=None
        ``(length,)`` for 1-D signals, ``(height, width)`` for images; None:
        1-D signals of length ``n_features / n_channels``.
    n_channels : int, default=1
        Input channels.
    conv_layers : tuple of (filters, kernel_size), default=((16, 3), (32, 3))
        One convolution block per entry; ``kernel_size`` is an int (a square
        kernel in 2-D) or a tuple of the input's dimensionality.
    pool_size : int, default=2
        Max pooling window (and stride) after every convolution, ``p`` in
        1-D, ``p x p`` in 2-D; 1: no pooling.
    padding : {"same", "valid"}, default="same"
        "same": ``k // 2`` zeros on each side (odd kernels keep the size).
    dense_layers : tuple of int, default=(64,)
        Widths of the hidden dense layers after flattening.
    solver : str, default="adam"
        A first-order name of :data:`fastopt.METHODS`, ``lbfgs`` or ``scg``
        (full batch, not with dropout); ``hessian-free`` and ``adahessian``
        need curvature products that this model does not provide.
    alpha : float, default=1e-4
        L2 strength (scikit-learn's MLP ``alpha``).
    batch_size : int, "auto" or None, default="auto"
        ``"auto"``: ``min(200, n_samples)`` (full batch for ``lbfgs``,
        ``scg``).
    max_iter : int, default=200
        Epochs (minibatch) or iterations (full batch).
    tol : float, default=1e-4
        Minibatch: the improvement of the epoch loss that resets the
        ``n_iter_no_change`` count; full batch: the gradient inf-norm test.
    n_iter_no_change : int or None, default=10
        Minibatch: stop after this many epochs without an improvement of
        ``tol``; None: run all ``max_iter`` epochs.
    dropout : float, default=0.0
        Dropout probability on the flattened features and on every hidden
        dense layer (inverted dropout, training only).
    random_state : int, RandomState or None, default=None
        Seeds the initialisation, the minibatch order and the dropout masks.
    solver_options : dict or None, default=None
        Options of the method, e.g. ``{"learning_rate": 1e-3}``.
    verbose : bool, default=False
        Print a progress bar with the loss.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    params_ : ndarray
        The flat parameters (layout in :mod:`fastopt.models._conv_kernels`).
    filters_ : list of ndarray
        ``filters_[l]`` in torch's layout ``(F, C, kh, kw)`` (``(F, C, k)``
        for 1-D inputs), ``conv_intercepts_[l]`` its biases.
    coefs_, intercepts_ : list of ndarray
        The dense layers (``coefs_[m]`` of shape ``(in, out)``); the first
        one's rows are the flattened features in channels-last order
        ``(y, x, channel)``.
    loss_, loss_curve_, n_iter_, t_, result_, n_features_in_

    Notes
    -----
    The convolutions are im2col matrices times the filter banks (one BLAS
    product per layer); forward and backward passes are compiled numba
    kernels, checked against finite differences and torch's
    ``conv1d``/``conv2d``/``max_pool`` in ``tests/test_conv.py``.
    ``benchmarks/conv_compare.py`` (one thread, float64, minibatch 128):
    forward+backward per sample 0.55x torch CPU's time on the digits
    ConvNet, 0.58x on the MNIST-1D one and 1.02x on an MNIST-sized one
    (28x28, 32 and 64 5x5 filters).
    Initialisation is Glorot-uniform with fan-in ``kh*kw*C`` and fan-out
    ``kh*kw*F`` (Glorot & Bengio 2010).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from fastopt.models import ConvNetClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = ConvNetClassifier(input_shape=(8, 8), conv_layers=((8, 3),),
    ...                         dense_layers=(32,), batch_size=64, max_iter=10,
    ...                         solver_options={"learning_rate": 1e-2}, random_state=0)
    >>> bool(clf.fit(X[:1000] / 16, y[:1000]).score(X[1000:] / 16, y[1000:]) > 0.9)
    True
    """

    def __init__(self, input_shape=None, n_channels=1, conv_layers=((16, 3), (32, 3)), *,
                 pool_size=2, padding="same", dense_layers=(64,), solver="adam", alpha=1e-4,
                 batch_size="auto", max_iter=200, tol=1e-4, n_iter_no_change=10, dropout=0.0,
                 random_state=None, solver_options=None, verbose=False):  # fmt: skip
        self.input_shape = input_shape
        self.n_channels = n_channels
        self.conv_layers = conv_layers
        self.pool_size = pool_size
        self.padding = padding
        self.dense_layers = dense_layers
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.dropout = dropout
        self.random_state = random_state
        self.solver_options = solver_options
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = True  # random init, batch order, dropout
        return tags

    # ---------------------------------------------------------------- shape
    def _shape(self, n_features):
        """``(dims, (H, W), C)`` of the input, checked against ``n_features``."""
        C = self.n_channels
        if isinstance(C, bool) or not isinstance(C, numbers.Integral) or C < 1:
            raise ValueError(f"n_channels must be an int >= 1; got {C!r}")
        shp = self.input_shape
        if shp is None:
            if n_features % C:
                raise ValueError(f"n_features={n_features} is not a multiple of n_channels={C}")
            shp = (n_features // C,)
        elif isinstance(shp, numbers.Integral) and not isinstance(shp, bool):
            shp = (shp,)
        shp = _check_int_tuple("input_shape", shp, length=(1, 2))
        if C * int(np.prod(shp)) != n_features:
            raise ValueError(
                f"X has {n_features} features, but input_shape={self.input_shape!r} with "
                f"n_channels={C} needs {C * int(np.prod(shp))}"
            )
        hw = (1, shp[0]) if len(shp) == 1 else shp
        return len(shp), hw, int(C)

    def _layers(self, dims):
        q = self.pool_size
        if isinstance(q, bool) or not isinstance(q, numbers.Integral) or q < 1:
            raise ValueError(f"pool_size must be an int >= 1; got {q!r}")
        q = int(q)
        try:
            spec = [tuple(layer) for layer in self.conv_layers]
        except TypeError:
            spec = None
        if spec is None or not all(len(s) == 2 for s in spec):
            raise ValueError(
                "conv_layers must be a sequence of (filters, kernel_size); "
                f"got {self.conv_layers!r}"
            )
        layers = []
        for F, k in spec:
            (F,) = _check_int_tuple("conv_layers filters", (F,))
            ks = (k,) * dims if isinstance(k, numbers.Integral) else k
            ks = _check_int_tuple("conv_layers kernel_size", ks, length=(dims,))
            kh, kw = (1, ks[0]) if dims == 1 else ks
            layers.append((F, kh, kw, 1 if dims == 1 else q, q))
        if self.padding not in ("same", "valid"):
            raise ValueError(f"padding must be 'same' or 'valid'; got {self.padding!r}")
        return layers

    def _to_internal(self, X):
        """Channels-first rows -> the kernels' channels-last rows (a copy)."""
        n = X.shape[0]
        H, W = self._hw
        C = self._C
        if C == 1:
            return X
        return np.ascontiguousarray(X.reshape(n, C, H, W).transpose(0, 2, 3, 1).reshape(n, -1))

    # ------------------------------------------------------------------ fit
    def fit(self, X, y):
        """Fit the network to ``X`` (n_samples, n_features) and labels ``y``."""
        X, y = _check_X(self, X, reset=True, y=y)
        check_classification_targets(y)
        method = check_common_params(self)
        if method in _NEEDS_PRODUCTS:
            raise ValueError(
                f"ConvNetClassifier does not support solver={self.solver!r}: it needs "
                "curvature products; use a first-order method, 'lbfgs' or 'scg'"
            )
        dims, hw, C = self._shape(X.shape[1])
        layers = self._layers(dims)
        dense_hidden = _check_layers(self.dense_layers)
        alpha = _check_real("alpha", self.alpha)
        dropout = _check_real("dropout", self.dropout)
        if not dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {self.dropout!r}")
        if dropout > 0.0 and method in ("scg", "lbfgs"):
            raise ValueError(
                f"solver={self.solver!r} compares values across steps, which dropout's random "
                "masks break; use dropout=0 or a first-order method"
            )
        nic = self.n_iter_no_change
        if nic is not None and (
            isinstance(nic, bool) or not isinstance(nic, numbers.Integral) or nic < 1
        ):
            raise ValueError(f"n_iter_no_change must be None or an int >= 1; got {nic!r}")
        try:
            geom, flat = ck.conv_geometry(hw, C, layers, self.padding)
        except ValueError as exc:
            # the message scikit-learn's 1-feature check looks for
            raise ValueError(f"{exc} (X has {X.shape[1]} feature(s))") from None
        yi = classes_of(self, y)
        K = len(self.classes_)
        n = X.shape[0]
        Y = encode(yi, K, "indicator")
        loss = mk.LOGISTIC if K == 2 else mk.SOFTMAX
        self.out_activation_ = "logistic" if K == 2 else "softmax"
        self._dims, self._hw, self._C = dims, hw, C
        dense = (flat,) + dense_hidden + (Y.shape[1],)
        rng = check_random_state(self.random_state)
        w0 = self._init(geom, dense, rng)
        mk.seed(seed_from(rng))
        Xi = self._to_internal(X)
        args = (Xi, Y, geom, dense, loss, alpha / n, dropout)
        res, monitor, n_iter = fit_parameters(
            self, method, ck.conv_fg, w0, args, None, None, n,
            record=True, n_iter_no_change=nic, scg_exact=False,
            check_args=args[:6] + (0.0,),
        )  # fmt: skip
        w = res.x
        self.params_ = w
        self.geometry_ = geom
        self.dense_sizes_ = dense
        self.n_iter_ = n_iter
        self.t_ = int(res.nit) * (n if monitor.batch_size is None else monitor.batch_size)
        self.result_ = res
        if monitor.batch_size is not None:
            self.loss_curve_ = list(monitor.curve)
        self.loss_ = float(ck.conv_fg(w, *args[:6], 0.0)[0])
        self._unpack(w, geom, dense)
        return self

    @staticmethod
    def _init(geom, dense, rng):
        parts = []
        for g in geom:
            C, F, kh, kw = g[2], g[3], g[4], g[5]
            bound = np.sqrt(6.0 / (kh * kw * (C + F)))
            parts += [rng.uniform(-bound, bound, kh * kw * C * F), np.zeros(F)]
        for a, b in zip(dense[:-1], dense[1:], strict=True):
            bound = np.sqrt(6.0 / (a + b))
            parts += [rng.uniform(-bound, bound, a * b), rng.uniform(-bound, bound, b)]
        return np.concatenate(parts)

    def _unpack(self, w, geom, dense):
        off = 0
        self.filters_, self.conv_intercepts_ = [], []
        for g in geom:
            C, F, kh, kw = g[2], g[3], g[4], g[5]
            Kb = w[off : off + kh * kw * C * F].reshape(kh, kw, C, F).transpose(3, 2, 0, 1)
            self.filters_.append(Kb[:, :, 0, :].copy() if self._dims == 1 else Kb.copy())
            off += kh * kw * C * F
            self.conv_intercepts_.append(w[off : off + F].copy())
            off += F
        self.coefs_, self.intercepts_ = [], []
        for a, b in zip(dense[:-1], dense[1:], strict=True):
            self.coefs_.append(w[off : off + a * b].reshape(a, b).copy())
            off += a * b
            self.intercepts_.append(w[off : off + b].copy())
            off += b

    # ------------------------------------------------------------- predict
    def _outputs(self, X):
        check_is_fitted(self)
        X = _check_X(self, X, reset=False)
        Xi = self._to_internal(X)
        out = [
            ck.conv_outputs(
                self.params_,
                np.ascontiguousarray(Xi[i : i + _PREDICT_CHUNK]),
                self.geometry_,
                self.dense_sizes_,
            )  # fmt: skip
            for i in range(0, max(Xi.shape[0], 1), _PREDICT_CHUNK)
        ]
        return np.concatenate(out) if out else np.empty((0, self.dense_sizes_[-1]))

    def decision_function(self, X):
        """The network's outputs (logits), ``(n_samples,)`` for two classes."""
        O = self._outputs(X)
        return O[:, 0] if O.shape[1] == 1 else O

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes)."""
        O = self._outputs(X)
        if O.shape[1] == 1:
            z = O[:, 0]
            return np.column_stack([expit(-z), expit(z)])
        return softmax(O, axis=1)

    def predict_log_proba(self, X):
        """Logarithms of :meth:`predict_proba`, computed without underflow."""
        O = self._outputs(X)
        if O.shape[1] == 1:
            z = O[:, 0]
            return np.column_stack([-np.logaddexp(0.0, z), -np.logaddexp(0.0, -z)])
        return log_softmax(O, axis=1)

    def predict(self, X):
        """Predicted class labels."""
        O = self._outputs(X)
        idx = (O[:, 0] > 0).astype(np.intp) if O.shape[1] == 1 else O.argmax(axis=1)
        return self.classes_[idx]
