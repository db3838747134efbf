"""``fastopt.models``: fit times, kernel times, and counts that do not vary with load.

* ``LinearFit.time_fit``: one ``fit`` of a linear model with its default
  solver (``lbfgs``; ``scg`` before it, kept as the ``,scg`` cases) on
  scikit-learn's bundled data and ``make_classification(100000, 100)``;
  ``LinearCounts.track_*``: its iterations and final loss.
* ``MLPFit.time_fit``: a small MLP on digits with the default solver
  (minibatch, with and without dropout) and with ``hessian-free``;
  ``MLPCounts.track_loss``.
* ``Kernels.time_*``: one loss + gradient (and one Gauss-Newton product) of
  the models' kernels.

Compile time is excluded: ``setup`` fits once (the kernels load from numba's
cache, the solver loops compile for the kernels' types); the data sets are
built once per process.  Thread pools are pinned to one thread before numpy
or numba is imported (see ``benchmarks/__init__.py``).
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS"):  # fmt: skip
    os.environ[_var] = "1"

import warnings  # noqa: E402

import numpy as np  # noqa: E402

_DATA = {}
_WARM = set()


def _data(name):
    """The data set ``name``, built once per process."""
    if name not in _DATA:
        from sklearn import datasets
        from sklearn.preprocessing import StandardScaler

        if name == "breast_cancer":
            X, y = datasets.load_breast_cancer(return_X_y=True)
            X = StandardScaler().fit_transform(X)
        elif name == "digits":
            X, y = datasets.load_digits(return_X_y=True)
            X = X / 16.0
        elif name == "diabetes":
            X, y = datasets.load_diabetes(return_X_y=True)
        elif name == "iris":
            X, y = datasets.load_iris(return_X_y=True)
        else:
            X, y = datasets.make_classification(100000, 100, random_state=0)
        _DATA[name] = (np.ascontiguousarray(X, dtype=np.float64), y)
    return _DATA[name]


def _linear(case):
    from fastopt.models import LinearRegression, LinearSVC, LogisticRegression

    return {
        "logistic/breast_cancer": (LogisticRegression, {}, "breast_cancer"),
        "logistic/digits": (LogisticRegression, {}, "digits"),
        "logistic/1e5x100,C=1e4": (LogisticRegression, {"C": 1e4}, "large"),
        "logistic/digits,scg": (LogisticRegression, {"solver": "scg"}, "digits"),
        "logistic/1e5x100,C=1e4,scg": (LogisticRegression, {"C": 1e4, "solver": "scg"}, "large"),
        "ridge/diabetes": (LinearRegression, {"alpha": 1.0}, "diabetes"),
        "linear_svc/iris": (LinearSVC, {}, "iris"),
    }[case]


LINEAR_CASES = ["logistic/breast_cancer", "logistic/digits", "logistic/1e5x100,C=1e4",
                "logistic/digits,scg", "logistic/1e5x100,C=1e4,scg",
                "ridge/diabetes", "linear_svc/iris"]  # fmt: skip


class LinearFit:
    """One ``fit`` with the default solver and ``tol`` (compile time excluded)."""

    params = [LINEAR_CASES]
    param_names = ["model/data"]
    timeout = 120

    def setup(self, case):
        cls, kw, data = _linear(case)
        self.X, self.y = _data(data)
        self.est = cls(**kw)
        if case not in _WARM:
            # twice: a process's first fit of a kind runs the Python driver,
            # the second compiles (or loads) the solver loop that is timed
            self.est.fit(self.X, self.y)
            self.est.fit(self.X, self.y)
            _WARM.add(case)

    def time_fit(self, case):
        self.est.fit(self.X, self.y)


class LinearCounts:
    """Iterations and final loss of those fits (machine-independent)."""

    params = [LINEAR_CASES]
    param_names = ["model/data"]
    timeout = 300

    def setup_cache(self):
        out = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for case in LINEAR_CASES:
                cls, kw, data = _linear(case)
                est = cls(**kw).fit(*_data(data))
                out[case] = {"loss": est.loss_, "n_iter": est.n_iter_}
        return out

    def track_loss(self, results, case):
        return results[case]["loss"]

    track_loss.unit = "loss"

    def track_n_iter(self, results, case):
        return results[case]["n_iter"]

    track_n_iter.unit = "iterations"


MLP_CASES = ["rmsprop/20 epochs", "rmsprop+dropout/20 epochs", "hessian-free/10 iterations"]


def _mlp(case):
    from fastopt.models import MLPClassifier

    kw = {"hidden_layer_sizes": (64,), "random_state": 0, "n_iter_no_change": None}
    if case.startswith("hessian-free"):
        return MLPClassifier(solver="hessian-free", max_iter=10, **kw)
    dropout = 0.2 if "dropout" in case else 0.0
    return MLPClassifier(max_iter=20, dropout=dropout, **kw)


class MLPFit:
    """One ``fit`` of a 64-unit MLP on digits (compile time excluded)."""

    params = [MLP_CASES]
    param_names = ["solver"]
    timeout = 120

    def setup(self, case):
        self.X, self.y = _data("digits")
        self.est = _mlp(case)
        if case not in _WARM:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.est.fit(self.X, self.y)  # the Python driver (first fit of its kind)
                self.est.fit(self.X, self.y)  # the compiled loop, timed below
            _WARM.add(case)

    def time_fit(self, case):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.est.fit(self.X, self.y)


class MLPCounts:
    """Final training loss of those fits (machine-independent)."""

    params = [MLP_CASES]
    param_names = ["solver"]
    timeout = 300

    def setup_cache(self):
        out = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for case in MLP_CASES:
                out[case] = _mlp(case).fit(*_data("digits")).loss_
        return out

    def track_loss(self, results, case):
        return results[case]

    track_loss.unit = "loss"


class Kernels:
    """One loss + gradient, one Gauss-Newton product (1e5 x 100; MLP on digits)."""

    params = [["binary", "10 classes", "mlp 64"]]
    param_names = ["kernel"]

    def setup(self, kind):
        from fastopt.models import _linear_kernels as lk
        from fastopt.models import _mlp_kernels as mk

        rng = np.random.default_rng(0)
        if kind == "mlp 64":
            X, y = _data("digits")
            Y = np.eye(10)[y]
            sizes = (64, 64, 10)
            self.args = (X, Y, sizes, mk.RELU, mk.SOFTMAX, 1e-4 / X.shape[0], 0.0, False)
            self.fg, self.gn = mk.mlp_fg, mk.mlp_gn
            self.w = 0.1 * rng.standard_normal(mk.n_params(sizes, False))
        else:
            X, y = _data("large")
            K = 1 if kind == "binary" else 10
            if K == 1:
                Y, loss = y.astype(np.float64).reshape(-1, 1), lk.LOGISTIC
            else:
                Y, loss = np.eye(K)[rng.integers(0, K, X.shape[0])], lk.SOFTMAX
            self.args = (X, Y, 1e-9, True, 1.0, False, loss)
            self.fg, self.gn = lk.linear_fg, lk.linear_gn
            self.w = 0.01 * rng.standard_normal(X.shape[1] * K + K)
        self.v = rng.standard_normal(self.w.shape[0])
        self.fg(self.w, *self.args)  # load from numba's cache, untimed
        self.gn(self.w, self.v, *self.args)

    def time_loss_and_gradient(self, kind):
        self.fg(self.w, *self.args)

    def time_gauss_newton_product(self, kind):
        self.gn(self.w, self.v, *self.args)
