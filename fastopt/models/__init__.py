"""Classical machine-learning models fitted by any fastopt method.

scikit-learn estimators (``fit``, ``predict``, ``score``, ``get_params`` ...)
whose loss and gradient are fused ``@njit`` kernels run by fastopt's compiled
drivers, with exact Gauss-Newton products for the second-order methods:

- :class:`LinearRegression`: least squares, ridge with ``alpha``;
- :class:`LogisticRegression`: binary and multinomial, L2 (scikit-learn's
  objective and ``C``);
- :class:`LinearSVC`: squared hinge, L2 (liblinear's objective and ``C``);
- :class:`MLPClassifier`, :class:`MLPRegressor`: dense networks with
  dropout and batch normalisation;
- :class:`ConvNetClassifier`: 1-D and 2-D convolutional networks (ReLU,
  max pooling, dropout, a dense head).

Every estimator takes ``solver=`` any name of :data:`fastopt.METHODS`,
``batch_size``, ``max_iter``, ``tol``, ``random_state``, ``solver_options``
(the method's own options) and ``verbose`` (a text progress bar).

scikit-learn is an optional dependency (``pip install "fastopt[ml]"``),
imported by this subpackage only.

Examples
--------
>>> from sklearn.datasets import load_breast_cancer
>>> from sklearn.preprocessing import StandardScaler
>>> from fastopt.models import LogisticRegression
>>> X, y = load_breast_cancer(return_X_y=True)
>>> X = StandardScaler().fit_transform(X)
>>> clf = LogisticRegression(C=1.0).fit(X, y)
>>> round(clf.score(X, y), 3)
0.988
"""

try:
    import sklearn  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "fastopt.models needs scikit-learn; install it with: pip install 'fastopt[ml]'"
    ) from exc

from ._conv import ConvNetClassifier
from ._linear import LinearRegression, LinearSVC, LogisticRegression
from ._mlp import MLPClassifier, MLPRegressor

__all__ = [
    "ConvNetClassifier",
    "LinearRegression",
    "LinearSVC",
    "LogisticRegression",
    "MLPClassifier",
    "MLPRegressor",
]
