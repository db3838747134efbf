"""
The Adam paper's comparison: L2-regularised logistic regression
===============================================================

Kingma & Ba (2015, figure 1) compare Adam with AdaGrad, SGD with Nesterov
momentum, RMSProp and AdaDelta on L2-regularised multinomial logistic
regression with minibatches of 128.  Here the same comparison on
scikit-learn's digits (1797 images of 8x8 pixels, 10 classes), 30 epochs,
with the paper's hyperparameters where it gives them (Adam: 1e-3 is too small
for 30 epochs of 14 batches, so every method's learning rate is the best of a
small grid, printed in the legend).  The training loss is the full-data
objective after every epoch, recorded with a callback.
:mod:`fastopt.models` has the estimators and ``docs/experiments/`` the full
experiment (MNIST-1D, an MLP with dropout).
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

import fastopt

X, y = load_digits(return_X_y=True)
X = X / 16.0
X = np.hstack([X, np.ones((len(X), 1))])  # intercept column
Y = np.eye(10)[y]
n, d = X.shape
lam = 1e-4


def loss(w, X, Y):
    """Mean softmax cross-entropy + (lam/2)|W|^2, and its gradient."""
    W = w.reshape(d, 10)
    Z = X @ W
    Z -= Z.max(axis=1, keepdims=True)
    P = np.exp(Z)
    P /= P.sum(axis=1, keepdims=True)
    f = -np.mean(np.sum(Y * np.log(P + 1e-300), axis=1)) + 0.5 * lam * np.sum(W * W)
    G = X.T @ (P - Y) / len(X) + lam * W
    return f, G.ravel()


methods = {
    "adam": [1e-3, 1e-2, 3e-2],
    "adagrad": [1e-2, 1e-1, 3e-1],
    "nag": [1e-2, 1e-1, 3e-1],
    "rmsprop": [1e-3, 1e-2, 3e-2],
    "adadelta": [1.0],
}
epochs, batches = 30, int(np.ceil(n / 128))


def recorder(curve):
    """A callback that appends the full-data loss at the end of every epoch."""

    def callback(intermediate_result):
        if intermediate_result.nit % batches == 0:
            curve.append(loss(intermediate_result.x, X, Y)[0])

    return callback


fig, ax = plt.subplots(figsize=(7, 4.5))
for method, grid in methods.items():
    best = None
    for lr in grid:
        curve = []
        fastopt.minimize(loss, np.zeros(d * 10), args=(X, Y), jac=True, method=method,
                         callback=recorder(curve),
                         options={"learning_rate": lr, "batch_size": 128, "epochs": epochs,
                                  "seed": 0})  # fmt: skip
        if best is None or curve[-1] < best[1][-1]:
            best = (lr, curve)
    ax.semilogy(np.arange(1, len(best[1]) + 1), best[1], label=f"{method} (lr={best[0]:g})")
ax.set_xlabel("epoch")
ax.set_ylabel("training loss")
ax.set_title("L2 logistic regression on digits, minibatch 128")
ax.legend()
fig.tight_layout()
plt.show()
