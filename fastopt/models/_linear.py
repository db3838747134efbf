r"""Linear models: least squares / ridge, logistic regression, linear SVM.

Each estimator scales its objective as scikit-learn does, so ``alpha`` and
``C`` mean what they mean there, and minimizes it divided by a constant (the
sample count, and ``C``) so that the kernels compute a mean loss (see
:mod:`fastopt.models._linear_kernels`).  Dividing by a constant moves no
minimum; it makes ``tol`` scikit-learn's lbfgs gradient test and lets the
minibatch drivers average over a batch.
"""

import numbers

import numpy as np
from scipy.special import expit, log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from . import _dask
from . import _linear_kernels as lk
from ._base import LINEAR_LBFGS, check_common_params
from ._data import check_X as _check_X
from ._data import fit_data

#: Default ``solver`` of the linear models, chosen by
#: ``benchmarks/models_compare.py`` (section 4): fit time to scikit-learn's
#: optimum (loss within 1e-6 relative of the lower of lbfgs and
#: newton-cholesky at tol=1e-10), full batch, best of 3, one thread, on the
#: 2-core development machine (ms; iterations in the script's output; lbfgs,
#: scg, hessian-free and adahessian run in the centred coordinates of
#: :data:`CENTERED_METHODS`):
#:
#: ==============================  ======  ==========  ========  ===========  =======
#: method                          breast  digits/16   diabetes  make_class.  total
#:                                 cancer  10 classes  ridge     2e4 x 100    (s)
#: ==============================  ======  ==========  ========  ===========  =======
#: lbfgs (maxcor 10, the default)     0.6         7.5       0.2          5.7    0.014
#: lbfgs, maxcor=20                   0.6         7.0       0.2          5.9    0.014
#: scg (the products used here)       0.9        15.3       0.2         11.0    0.027
#: scg, exact products everywhere     0.9        22.5       0.2         11.0    0.035
#: scg, finite differences            0.9        15.3       0.2         11.4    0.028
#: rprop                              1.4       113.4       0.2         21.7    0.137
#: hessian-free, lambda_=1e-3         1.8        55.8       0.3         51.5    0.109
#: hessian-free                       3.3       128.6       0.6         84.3    0.217
#: adahessian                         7.6        99.6       0.6        153.7    0.261
#: adam, lr=1e-2                     27.0       535.2         -        202.1      -
#: ==============================  ======  ==========  ========  ===========  =======
#:
#: ("-": not within 20000 iterations.)  lbfgs needs about one gradient per
#: iteration where scg needs two, and its loop has no Python in it.  It keeps
#: scipy's (and scikit-learn's) memory of 10 pairs (20 pairs: the same total).
#: The linear models run it with :data:`fastopt.models._base.LINEAR_LBFGS`
#: (no f test: ``tol`` is the stop).  Issue 5's targets
#: (``benchmarks/models_compare.py``, sections 2 and 3, best of 5):
#: make_classification(1e5, 100), C=1e4: 0.035 s against scikit-learn's
#: 0.069 s (x0.50; scg: 0.073 s); raw digits, C=1e4: 0.007 s (29 iterations,
#: to a lower loss) against 0.021 s (50 iterations), x0.35; scg: 0.025 s.
#: Centring took digits/16 from 30.9 to 7.5 ms and the raw digits fit from 53
#: evaluations (x0.55) to 30.
DEFAULT_SOLVER = "lbfgs"

#: Methods that run the linear models in centred coordinates
#: (:func:`fastopt.models._linear_kernels.from_centered`): an exact change of
#: variables, ``b = c - U^T mu / s``, with ``mu`` the column means, that
#: decouples the weights from the intercept.  On raw digits (pixel means up
#: to 12), C=1e4, lbfgs reaches scikit-learn's tol=1e-4 loss in 26
#: evaluations instead of 53 and its converged loss in about 1,600 instead of
#: over 6,000 (``benchmarks/models_compare.py``).  Hessian-free and AdaHessian
#: get the Gauss-Newton product and diagonal in those coordinates
#: (``centered_gn``, ``centered_gn_diag``): full batch, tol=1e-6, digits/16
#: C=1: hessian-free 511 -> 322 products (162 -> 109 ms), adahessian 3,000
#: iterations without converging -> 347 (1,077 -> 127 ms); raw breast
#: cancer: hessian-free 767 -> 449 products.  Full batch only (the minibatch
#: drivers slice every array of ``args``, ``mu`` included); the first-order
#: methods run in the model's own coordinates (their learning rates are the
#: user's, there).
CENTERED_METHODS = frozenset({"lbfgs", "scg", "hessian-free", "adahessian"})


def _check_real(name, value, minimum=0.0, strict=False, allow_inf=False):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        ok = (value > minimum if strict else value >= minimum) and (allow_inf or np.isfinite(value))
    if not ok:
        rel = ">" if strict else ">="
        raise ValueError(f"{name} must be a float {rel} {minimum}; got {value!r}")
    return float(value)


class _LinearModel(BaseEstimator):
    """Fit and prediction shared by the linear models."""

    def _fit_linear(self, data, lam, s, penalize_b, loss):
        """Minimize the model's objective on ``data`` (:mod:`fastopt.models._data`)."""
        method = check_common_params(self)
        p, K = data.p, data.n_outputs
        fit_intercept = bool(self.fit_intercept)
        w0 = np.zeros(p * K + (K if fit_intercept else 0))
        tail = (float(lam), fit_intercept, float(s), bool(penalize_b), int(loss))
        defaults = dict(LINEAR_LBFGS) if method == "lbfgs" else {}
        # in memory, the fg kernel of this loss only (compiles a third of
        # linear_fg's code); the workers of dask data get the module-level
        # kernels, which pickle by reference
        per_loss = data.in_memory
        fg = lk.fg_kernel(loss, K) if per_loss else lk.linear_fg
        kernels = (fg, lk.linear_gn, lk.linear_gn_diag)
        mu = None
        # full batch only: the minibatch drivers slice every array in args
        if fit_intercept and method in CENTERED_METHODS and data.batch_size(self, method) is None:
            mu = data.column_means()
            tail = (*tail, mu)
            fg = lk.fg_kernel(loss, K, True) if per_loss else lk.centered_fg
            kernels = (fg, lk.centered_gn, lk.centered_gn_diag)
            # |g_W| <= |g_U| + |mu|/s |g_b| <= (1 + |mu|_inf / s) |g_u|_inf: this
            # gtol in centred coordinates keeps ``tol`` scikit-learn's test
            # on the gradient in the model's own parameters
            defaults["gtol"] = float(self.tol) / (1.0 + float(np.max(np.abs(mu))) / float(s))
        # one output: the fused Gauss-Newton product costs one pass, like fg
        res, _, n_iter = data.minimize(self, method, kernels, w0, tail, scg_exact=K == 1,
                                       defaults=defaults or None)  # fmt: skip
        if mu is not None:
            res.x = lk.from_centered(res.x, mu, float(s))
            if "jac" in res:
                res.jac = lk.grad_from_centered(res.jac, mu, float(s))
        W = res.x[: p * K].reshape(p, K)
        b = s * res.x[p * K :] if fit_intercept else np.zeros(K)
        self.n_iter_ = n_iter
        self.loss_ = float(res.fun)
        self.result_ = res
        return W, b

    def _decision(self, X):
        check_is_fitted(self)
        X = _check_X(self, X, reset=False)
        return X @ self.coef_.T + self.intercept_


class LinearRegression(RegressorMixin, _LinearModel):
    r"""Least squares with an optional L2 penalty (ridge), fitted by a fastopt method.

    Minimizes scikit-learn's ``Ridge`` objective (``alpha=0``: ordinary least
    squares)

    .. math::

        \|y - Xw - b\|^2 + \alpha \|w\|^2

    (the intercept :math:`b` is not penalised), divided by :math:`2n` for the
    solver: :math:`\frac{1}{2n}\|y - Xw - b\|^2 + \frac{\alpha}{2n}\|w\|^2`.

    Parameters
    ----------
    alpha : float, default=0.0
        L2 strength, scikit-learn ``Ridge``'s ``alpha``.
    fit_intercept : bool, default=True
    solver : str, default="lbfgs"
        Any name of :data:`fastopt.METHODS`.  The default was chosen by
        ``benchmarks/models_compare.py`` (see :data:`DEFAULT_SOLVER`).
    batch_size : int, "auto" or None, default="auto"
        Minibatch size; ``"auto"``: full batch for ``lbfgs``, ``scg`` and
        ``hessian-free``, ``min(200, n_samples)`` for the other methods;
        None: full batch.
    max_iter : int, default=1000
        Iterations (full batch) or epochs (minibatch).
    tol : float, default=1e-4
        Full batch: stop when the inf-norm of the gradient of the scaled
        objective is below ``tol``.
    random_state : int, RandomState or None, default=None
        Seeds the minibatch order (and stochastic solvers).
    solver_options : dict or None, default=None
        Options of the method, e.g. ``{"learning_rate": 1e-2}``.
    verbose : bool, default=False
        Print a progress bar with the loss.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,) or (n_targets, n_features)
    intercept_ : float or ndarray of shape (n_targets,)
    n_iter_ : int
        Iterations or epochs run.
    loss_ : float
        The scaled objective at the solution.
    result_ : scipy.optimize.OptimizeResult
        The solver's result; ``x`` and ``jac`` in the model's parameters
        ``[W.ravel(), b]`` (mapped back from the centred coordinates that
        lbfgs, scg, hessian-free and adahessian run in, full batch).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` has string feature names.

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from fastopt.models import LinearRegression
    >>> X, y = load_diabetes(return_X_y=True)
    >>> reg = LinearRegression(alpha=0.1).fit(X, y)
    >>> round(reg.score(X, y), 3)
    0.513
    """

    def __init__(self, alpha=0.0, *, fit_intercept=True, solver=DEFAULT_SOLVER,
                 batch_size="auto", max_iter=1000, tol=1e-4, random_state=None,
                 solver_options=None, verbose=False):  # fmt: skip
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.solver_options = solver_options
        self.verbose = verbose

    score = _dask.score

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def fit(self, X, y):
        """Fit the model to ``X`` (n_samples, n_features) and ``y`` (n_samples[, n_targets])."""
        alpha = _check_real("alpha", self.alpha)
        with fit_data(self, X, y, "numeric") as data:
            W, b = self._fit_linear(data, alpha / data.n, 1.0, False, lk.SQUARED)
        if data.y_ndim == 1:
            self.coef_ = W[:, 0].copy()
            self.intercept_ = float(b[0])
        else:
            self.coef_ = np.ascontiguousarray(W.T)
            self.intercept_ = b
        return self

    @_dask.lazy
    def predict(self, X):
        """Predicted targets, shape (n_samples,) or (n_samples, n_targets)."""
        return self._decision(X)


class _LinearClassifier(ClassifierMixin, _LinearModel):
    score = _dask.score

    @_dask.lazy
    def decision_function(self, X):
        """Confidence scores :math:`Xw + b`, shape (n_samples,) for two classes."""
        scores = self._decision(X)
        return scores.ravel() if scores.shape[1] == 1 else scores

    @_dask.lazy
    def predict(self, X):
        """Predicted class labels."""
        scores = self.decision_function(X)
        if scores.ndim == 1:
            idx = (scores > 0).astype(np.intp)
        else:
            idx = scores.argmax(axis=1)
        return self.classes_[idx]


class LogisticRegression(_LinearClassifier):
    r"""L2-regularised logistic regression, binary or multinomial, by a fastopt method.

    Minimizes scikit-learn's objective (its ``C`` and lbfgs form; the
    intercepts are not penalised)

    .. math::

        \tfrac12 \|W\|_F^2 + C \sum_{i=1}^n \ell_i, \qquad
        \ell_i = \log\!\Big(\sum_k e^{z_{ik}}\Big) - z_{i y_i}, \quad
        z_i = W^T x_i + b,

    the multinomial (softmax) loss for three classes or more and the binary
    :math:`\ell_i = \log(1 + e^{z_i}) - y_i z_i` for two, divided by
    :math:`Cn` for the solver: :math:`\frac1n \sum_i \ell_i +
    \frac{1}{2Cn}\|W\|_F^2`, exactly scikit-learn's lbfgs objective (so
    ``tol`` is its gradient test).  The multinomial intercepts are unique up
    to a common shift; they are returned centred (sum zero), as scikit-learn's
    lbfgs, which starts from zero, returns them.

    Parameters
    ----------
    C : float, default=1.0
        Inverse regularisation strength; ``np.inf``: no penalty.
    fit_intercept : bool, default=True
    solver : str, default="lbfgs"
        Any name of :data:`fastopt.METHODS` (see ``benchmarks/models_compare.py``
        for the choice of the default).
    batch_size, max_iter, tol, random_state, solver_options, verbose
        See :class:`LinearRegression`.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
    intercept_ : ndarray of shape (1,) or (n_classes,)
    n_iter_, loss_, result_, n_features_in_, feature_names_in_
        See :class:`LinearRegression`.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from fastopt.models import LogisticRegression
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = LogisticRegression(C=0.01).fit(X / 16, y)
    >>> clf.coef_.shape, round(clf.score(X / 16, y), 2)
    ((10, 64), 0.92)
    """

    def __init__(self, C=1.0, *, fit_intercept=True, solver=DEFAULT_SOLVER, batch_size="auto",
                 max_iter=1000, tol=1e-4, random_state=None, solver_options=None,
                 verbose=False):  # fmt: skip
        self.C = C
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.solver_options = solver_options
        self.verbose = verbose

    def fit(self, X, y):
        """Fit the model to ``X`` (n_samples, n_features) and labels ``y``."""
        C = _check_real("C", self.C, strict=True, allow_inf=True)
        with fit_data(self, X, y, "indicator") as data:
            K = len(self.classes_)
            loss = lk.LOGISTIC if K == 2 else lk.SOFTMAX
            W, b = self._fit_linear(data, 1.0 / (C * data.n), 1.0, False, loss)
        if K > 2 and self.fit_intercept:
            b = b - b.mean()
        self.coef_ = np.ascontiguousarray(W.T)
        self.intercept_ = b
        return self

    @_dask.lazy
    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes)."""
        scores = self._decision(X)
        if scores.shape[1] == 1:
            # expit(-z), not 1 - expit(z): no cancellation for confident rows
            z = scores[:, 0]
            return np.column_stack([expit(-z), expit(z)])
        return softmax(scores, axis=1)

    @_dask.lazy
    def predict_log_proba(self, X):
        """Logarithms of :meth:`predict_proba`, computed without underflow."""
        scores = self._decision(X)
        if scores.shape[1] == 1:
            z = scores[:, 0]
            # log(1 - sigmoid(z)) = -log(1 + e^z), log(sigmoid(z)) = -log(1 + e^-z)
            return np.column_stack([-np.logaddexp(0.0, z), -np.logaddexp(0.0, -z)])
        return log_softmax(scores, axis=1)


class LinearSVC(_LinearClassifier):
    r"""Linear support vector classifier with the squared hinge loss, by a fastopt method.

    Minimizes liblinear's primal objective, as scikit-learn's ``LinearSVC``
    (``penalty="l2"``, ``loss="squared_hinge"``), one-vs-rest for more than
    two classes (one independent problem per class, solved together):

    .. math::

        \tfrac12 \left(\|w\|^2 + b'^2\right)
        + C \sum_{i=1}^n \max\!\left(0,\, 1 - y_i (w^T x_i + s\, b')\right)^2,
        \qquad y_i = \pm 1,

    where :math:`s` is ``intercept_scaling`` and the intercept is
    :math:`s b'`: liblinear appends a constant feature :math:`s` whose weight
    is penalised like the others.  Divided by :math:`Cn` for the solver.

    Parameters
    ----------
    C : float, default=1.0
        Inverse regularisation strength.
    fit_intercept : bool, default=True
    intercept_scaling : float, default=1.0
        The value :math:`s` of the synthetic feature.
    solver : str, default="lbfgs"
        Any name of :data:`fastopt.METHODS`.
    batch_size, max_iter, tol, random_state, solver_options, verbose
        See :class:`LinearRegression`.

    Attributes
    ----------
    classes_, coef_, intercept_, n_iter_, loss_, result_, n_features_in_
        See :class:`LogisticRegression`.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from fastopt.models import LinearSVC
    >>> X, y = load_iris(return_X_y=True)
    >>> svc = LinearSVC(C=1.0).fit(X, y)
    >>> svc.coef_.shape, round(svc.score(X, y), 2)
    ((3, 4), 0.97)
    """

    def __init__(self, C=1.0, *, fit_intercept=True, intercept_scaling=1.0,
                 solver=DEFAULT_SOLVER, batch_size="auto", max_iter=1000, tol=1e-4,
                 random_state=None, solver_options=None, verbose=False):  # fmt: skip
        self.C = C
        self.fit_intercept = fit_intercept
        self.intercept_scaling = intercept_scaling
        self.solver = solver
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.solver_options = solver_options
        self.verbose = verbose

    def fit(self, X, y):
        """Fit the model to ``X`` (n_samples, n_features) and labels ``y``."""
        C = _check_real("C", self.C, strict=True)
        s = _check_real("intercept_scaling", self.intercept_scaling, strict=True)
        with fit_data(self, X, y, "sign") as data:
            W, b = self._fit_linear(data, 1.0 / (C * data.n), s, True, lk.SQUARED_HINGE)
        self.coef_ = np.ascontiguousarray(W.T)
        self.intercept_ = b
        return self
