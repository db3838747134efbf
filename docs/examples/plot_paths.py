"""
The methods' paths on 2-D functions
===================================

The visualisation slide of :ref:`the lecture <the-lecture>`: every
first-order method started from the same point on four 2-D functions, 2000
steps each, with one table of learning rates (``_paths.OPTIONS``). Momentum
methods overshoot and curve back; the adaptive methods (AdaGrad, RMSProp,
Adam) move along each axis at a similar speed regardless of the gradient's
scale; Rprop moves by signs. The saddle shows which methods escape a saddle
point started just off it.
"""

import matplotlib.pyplot as plt
import numpy as np
from _paths import contour, functions, paths

fig, axes = plt.subplots(2, 2, figsize=(11, 9))
colors = plt.cm.tab10(np.linspace(0, 1, 10))
for ax, (name, spec) in zip(axes.flat, functions().items(), strict=True):
    fun, grad, x0, xstar, (xlim, ylim) = spec
    contour(ax, fun, xlim, ylim)
    for (m, P), col in zip(paths(fun, grad, x0).items(), colors, strict=False):
        ax.plot(P[:, 0], P[:, 1], "-", color=col, lw=1.2, label=m)
    ax.plot(*x0, "ko", ms=5)
    ax.plot(*xstar, "r*", ms=12)
    ax.set_title(name)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
axes[0, 0].legend(fontsize=8, loc="lower right")
fig.tight_layout()
plt.show()
