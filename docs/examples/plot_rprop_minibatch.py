"""
Why Rprop breaks with minibatches and RMSProp does not
======================================================

"Problems with Rprop" in :ref:`the lecture <the-lecture>`: a weight whose gradient is +0.1 in nine
minibatches and -0.9 in the tenth has a full-batch gradient of zero, so it
should stay where it is.  Rprop looks only at signs: it steps nine times one
way and once the other, and drifts.  RMSProp divides by the running RMS of
the gradient, which is the same for every minibatch, so its steps cancel like
SGD's.
"""

import matplotlib.pyplot as plt
import numpy as np

import fastopt

grads = np.tile(np.r_[np.full(9, 0.1), -0.9], 30)  # 30 epochs of 10 minibatches
fig, ax = plt.subplots(figsize=(7, 4))
for method, opts in [("sgd", {"learning_rate": 0.1}), ("rprop", {"learning_rate": 0.01}),
                     ("rmsprop", {"learning_rate": 0.01})]:  # fmt: skip
    opt = fastopt.optimizer(method, **opts)
    x = np.zeros(1)
    state = opt.init(x)
    xs = [0.0]
    for g in grads:
        state = opt.step(x, np.array([g]), state)
        xs.append(x[0])
    ax.plot(xs, label=method)
ax.axhline(0, color="k", lw=0.5)
ax.set_xlabel("minibatch step")
ax.set_ylabel("weight (symmetric log scale)")
ax.set_yscale("symlog", linthresh=0.1)
ax.set_title("Full-batch gradient is 0: the weight should not move")
ax.legend()
fig.tight_layout()
plt.show()
