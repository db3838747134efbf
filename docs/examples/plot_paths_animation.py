"""
Animated paths on the Rosenbrock function
=========================================

The same race as an animated GIF (matplotlib's animation writer with Pillow):
the picture at the top of the README.  The last frame is shown here.
"""

import matplotlib.pyplot as plt
import numpy as np
from _paths import contour, functions, paths
from matplotlib.animation import FuncAnimation, PillowWriter

fun, grad, x0, xstar, (xlim, ylim) = functions()["Rosenbrock"]
P = paths(fun, grad, x0, maxiter=1500)

fig, ax = plt.subplots(figsize=(6, 4.5))
contour(ax, fun, xlim, ylim, n=150)
ax.plot(*xstar, "r*", ms=12)
ax.set_xlabel("$x_1$")
ax.set_ylabel("$x_2$")
colors = plt.cm.tab10(np.linspace(0, 1, 10))
lines = {
    m: ax.plot([], [], "-", color=c, lw=1.5, label=m)[0] for m, c in zip(P, colors, strict=False)
}
ax.legend(fontsize=7, loc="lower right")
frames = np.unique(np.geomspace(1, 1501, 60).astype(int))


def draw(k):
    for m, line in lines.items():
        line.set_data(P[m][:k, 0], P[m][:k, 1])
    ax.set_title(f"fastopt methods on Rosenbrock, step {k - 1}")
    return list(lines.values())


anim = FuncAnimation(fig, draw, frames=frames, blit=False)
anim.save("rosenbrock_paths.gif", writer=PillowWriter(fps=12), dpi=70)
draw(frames[-1])
plt.show()
