"""
Natural-gradient training of an MLP: K-FAC and natural neural networks
======================================================================

Two ways to train a network along (an approximation of) the natural gradient,
both options of :class:`fastopt.models.MLPClassifier`:

* ``solver="kfac"`` (Martens & Grosse 2015): the Fisher of each layer as a
  Kronecker product of its input and output-derivative covariances, damped,
  inverted every few iterations, the step rescaled on the exact Gauss-Newton
  quadratic model;
* ``whiten=True`` (PRONG, Desjardins et al. 2015): each layer's input
  whitened, the whitening re-estimated every ``whiten_every`` updates without
  changing the network, and a plain first-order rule (here SGD) on the new
  parameters.

Digits (1797 images of 8x8 pixels), one hidden layer of 64 ReLUs, minibatches
of 128, the mean minibatch loss of every epoch (``loss_curve_``).
``benchmarks/kfac_compare.py`` measures both against tuned Adam and SGD on
the Adam paper's MLPs.
"""

import warnings

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from fastopt.models import MLPClassifier

X, y = load_digits(return_X_y=True)
X = X / 16.0
runs = {
    "Adam, lr 3e-3": dict(solver="adam", solver_options={"learning_rate": 3e-3}),
    "K-FAC": dict(solver="kfac"),
    "SGD, lr 0.1": dict(solver="sgd", solver_options={"learning_rate": 0.1}),
    "PRONG + SGD, lr 0.1": dict(
        solver="sgd", solver_options={"learning_rate": 0.1}, whiten=True, whiten_every=50
    ),
}
fig, ax = plt.subplots(figsize=(6.4, 4.2))
for label, params in runs.items():
    clf = MLPClassifier(
        (64,), batch_size=128, max_iter=15, n_iter_no_change=None, random_state=0, **params
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    ax.plot(range(1, 16), clf.loss_curve_, label=label)
ax.set_yscale("log")
ax.set_xlabel("epoch")
ax.set_ylabel("training loss (mean over the epoch's minibatches)")
ax.legend()
fig.tight_layout()
plt.show()
