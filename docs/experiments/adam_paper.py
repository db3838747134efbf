"""The comparisons of the Adam paper, at the scale of a 2-core machine.

Kingma & Ba, "Adam: A method for stochastic optimization", ICLR 2015, compare
Adam with AdaGrad, RMSProp, AdaDelta and SGD with Nesterov momentum on the
training cost of

* L2-regularised multinomial logistic regression (their section 6.1, MNIST;
  minibatch 128, step size decayed as :math:`\\alpha_t = \\alpha/\\sqrt{t}`);
* a multi-layer perceptron with dropout (section 6.2, MNIST, two hidden
  layers of 1000 ReLU units; minibatch 128, constant step size);
* a convolutional network (section 6.3, CIFAR-10: three stages of 5x5
  convolutions and 3x3 max pooling, a fully connected layer of 1000 ReLUs,
  dropout on the input and the fully connected layer; minibatch 128).

Here: the same five methods and settings on scikit-learn's digits (1797 x 64,
pixels scaled to [0, 1]) and on MNIST-1D (Greydanus 2020; 4000 x 40, ten
classes, generated offline by the ``mnist1d`` package), with an MLP of two
hidden layers of 256 ReLU units and dropout 0.5.  As in the paper, each
method's learning rate is the best of a grid (values a factor ~3 apart
around its usual default, see :data:`GRIDS`), chosen by the final training
loss of the full run (logistic regression) or of the first 15 epochs (MLP);
all methods start from the same weights and see the same minibatches.  The
curves are the full training objective (no dropout) after every epoch.

The ConvNets (:class:`fastopt.models.ConvNetClassifier`'s kernels): on
digits, 8x8 images, conv 16 3x3 / pool 2, conv 32 3x3 / pool 2, fc 64; on
MNIST-1D, 1-D signals of length 40, conv 16 (5) / pool 2, conv 32 (5) /
pool 2, fc 64; dropout 0.5 on the flattened features and the fc layer, L2
1e-4, learning rates tuned on 15 epochs as for the MLP.  The paper found on
CIFAR-10 that Adam and SGD with Nesterov momentum converge considerably
faster than AdaGrad (whose accumulated second moments make its steps vanish),
Adam marginally ahead of SGD; RMSProp and AdaDelta were not in that figure
(we run all five, as in the other experiments).  K-FAC and PRONG are
options of the MLPs (dense layers) only, so not in the ConvNet runs; the
table says so, and ``benchmarks/kfac_compare.py`` compares them on the MLP.

Outputs, next to this script: ``adam_<experiment>.png`` (one plot per
experiment), ``adam_paper.md`` and ``adam_paper.csv`` (loss after fixed
epochs).  Run from anywhere (about three minutes on two cores for the
first four experiments; the ConvNets, full grids, 15 and 29 minutes on
digits and MNIST-1D on the 2-core machine shared with other jobs)::

    python docs/experiments/adam_paper.py [--only KEY ...] [--quick]

``--only``: run only these experiments (e.g. ``conv_digits conv_mnist1d``)
and keep the other experiments' rows of ``adam_paper.csv``/``.md``;
``--quick``: a 3-point learning-rate grid (factors 0.3, 1, 3 of the centre),
reported as such in the table.
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS"):  # fmt: skip
    os.environ[_var] = "1"

import csv  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

import fastopt  # noqa: E402
from fastopt import schedules  # noqa: E402
from fastopt.models import _conv_kernels as ck  # noqa: E402
from fastopt.models import _linear_kernels as lk  # noqa: E402
from fastopt.models import _mlp_kernels as mk  # noqa: E402
from fastopt.models._mlp import glorot_init  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BATCH = 128
SEED = 0

#: method -> (fastopt name, fixed options, learning-rate grid); the grids
#: centre on the usual defaults (Adam 1e-3, AdaGrad 1e-2, SGD-Nesterov 1e-2,
#: RMSProp 1e-3, AdaDelta 1.0)
METHODS = {
    "Adam": ("adam", {}, 1e-3),
    "AdaGrad": ("adagrad", {}, 1e-2),
    "SGD Nesterov": ("nag", {"momentum": 0.9}, 1e-2),
    "RMSProp": ("rmsprop", {}, 1e-3),
    "AdaDelta": ("adadelta", {}, 1.0),
}
#: learning-rate grids, as factors of the centre: the 1/sqrt(t) decay of the
#: logistic-regression runs divides the rate by 26 over 45 epochs of digits,
#: so their best base rates sit far above the usual defaults
GRIDS = {
    "logistic": (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0),
    "mlp": (0.1, 0.3, 1.0, 3.0, 10.0, 30.0),
    "conv": (0.1, 0.3, 1.0, 3.0, 10.0, 30.0),
}
#: ``--quick``: the reduced grid of every model
QUICK_GRID = (0.3, 1.0, 3.0)
#: the ConvNets: data set -> (input (H, W), [(filters, kh, kw, pool_h, pool_w)])
CONVNETS = {
    "digits": ((8, 8), [(16, 3, 3, 2, 2), (32, 3, 3, 2, 2)]),
    "MNIST-1D": ((1, 40), [(16, 1, 5, 1, 2), (32, 1, 5, 1, 2)]),
}
#: epochs at which the table reports the training loss
TABLE_EPOCHS = (1, 5, 10, 20, 45)


class InvSqrt(schedules.Schedule):
    """:math:`\\alpha_t = \\alpha / \\sqrt{t}`, the paper's decay for logistic regression."""

    def factor(self, t):
        return 1.0 / math.sqrt(t + 1.0)


def datasets():
    from mnist1d.data import get_dataset_args, make_dataset

    X, y = load_digits(return_X_y=True)
    d = make_dataset(get_dataset_args())
    return {
        "digits": (np.ascontiguousarray(X / 16.0), y),
        "MNIST-1D": (np.ascontiguousarray(d["x"], dtype=np.float64), d["y"]),
    }


def problem(model, X, y, set_name=None):
    """``(fg, loss, w0, args, reset)``: the objective of the estimators' kernels.

    ``loss(w)`` is the full training objective without dropout; ``reset()``
    reseeds the dropout masks so that every method sees the same ones.
    """
    n, p = X.shape
    K = int(y.max()) + 1
    Y = np.zeros((n, K))
    Y[np.arange(n), y] = 1.0
    if model == "logistic":
        # lambda = 1e-4 in the mean-scaled objective (scikit-learn's C = 1/(1e-4 n))
        args = (X, Y, 1e-4, True, 1.0, False, lk.SOFTMAX)
        w0 = np.zeros(p * K + K)
        return lk.linear_fg, lambda w: lk.linear_loss(w, *args), w0, args, lambda: None
    if model == "conv":
        from fastopt.models import ConvNetClassifier

        hw, layers = CONVNETS[set_name]
        geom, flat = ck.conv_geometry(hw, 1, layers, "same")
        dense = (flat, 64, K)
        args = (X, Y, geom, dense, mk.SOFTMAX, 1e-4 / n, 0.5)
        # the estimator's Glorot initialisation
        w0 = ConvNetClassifier._init(geom, dense, np.random.RandomState(SEED))
        eval_args = args[:6] + (0.0,)
        return ck.conv_fg, lambda w: ck.conv_fg(w, *eval_args)[0], w0, args, lambda: mk.seed(SEED)
    sizes = (p, 256, 256, K)
    args = (X, Y, sizes, mk.RELU, mk.SOFTMAX, 1e-4 / n, 0.5, False)
    w0 = glorot_init(sizes, "relu", False, np.random.RandomState(SEED))
    eval_args = args[:6] + (0.0, False)

    def loss(w):
        return mk.mlp_loss(w, *eval_args)

    return mk.mlp_fg, loss, w0, args, lambda: mk.seed(SEED)


def run(fg, loss, w0, args, reset, method, options, lr, epochs, schedule):
    """Train; returns the training loss before the first and after every epoch."""
    n = args[0].shape[0]
    n_batches = -(-n // BATCH)
    curve = [float(loss(w0))]

    def callback(xk):
        # called after every step; an epoch ends every n_batches steps
        callback.steps += 1
        if callback.steps % n_batches == 0:
            curve.append(float(loss(xk)))

    callback.steps = 0
    reset()
    opts = {**options, "learning_rate": lr, "batch_size": BATCH, "epochs": epochs,
            "seed": SEED}  # fmt: skip
    if schedule is not None:
        opts["schedule"] = schedule
    res = fastopt.minimize(fg, w0, args=args, method=method, jac=True, options=opts,
                           callback=callback)  # fmt: skip
    if not res.success:  # diverged: the rest of the curve is undefined
        curve += [np.inf] * (epochs + 1 - len(curve))
    return np.array(curve[: epochs + 1])


EXPERIMENTS = [
    # (key, model, data set, epochs, tuning epochs, schedule)
    ("logreg_digits", "logistic", "digits", 45, 45, InvSqrt()),
    ("logreg_mnist1d", "logistic", "MNIST-1D", 45, 45, InvSqrt()),
    ("mlp_digits", "mlp", "digits", 45, 15, None),
    ("mlp_mnist1d", "mlp", "MNIST-1D", 45, 15, None),
    ("conv_digits", "conv", "digits", 45, 15, None),
    ("conv_mnist1d", "conv", "MNIST-1D", 45, 15, None),
]
TITLES = {
    "logistic": "L2 logistic regression, minibatch 128, $\\alpha/\\sqrt{t}$",
    "mlp": "MLP 2x256 ReLU, dropout 0.5, minibatch 128",
    "conv": "ConvNet 2 conv/pool + fc64, dropout 0.5, minibatch 128",
}


def main(only=None, quick=False):
    t_start = time.perf_counter()
    data = datasets()
    rows = []
    for key, model, set_name, epochs, tune_epochs, schedule in EXPERIMENTS:
        if only and key not in only:
            continue
        X, y = data[set_name]
        fg, loss, w0, args, reset = problem(model, X, y, set_name)
        run(fg, loss, w0, args, reset, "adam", {}, 1e-3, 1, schedule)  # compile
        curves, chosen = {}, {}
        t0 = time.perf_counter()
        for label, (method, options, centre) in METHODS.items():
            run(fg, loss, w0, args, reset, method, options, centre, 1, schedule)  # compile
            scores, tuned = {}, {}
            grid = QUICK_GRID if quick else GRIDS[model]
            for f in grid:
                lr = centre * f
                tuned[lr] = run(fg, loss, w0, args, reset, method, options, lr, tune_epochs,
                                schedule)  # fmt: skip
                scores[lr] = tuned[lr][-1] if np.isfinite(tuned[lr][-1]) else np.inf
            chosen[label] = min(scores, key=scores.get)
            if chosen[label] in (centre * grid[0], centre * grid[-1]):
                print(f"  note: {label}'s best learning rate is at the edge of its grid")
            if tune_epochs == epochs:
                curves[label] = tuned[chosen[label]]
            else:
                curves[label] = run(fg, loss, w0, args, reset, method, options, chosen[label],
                                    epochs, schedule)  # fmt: skip
        print(f"\n{key}: {TITLES[model]} on {set_name} ({time.perf_counter() - t0:.1f} s)")
        print(f"  {'method':14s} {'lr':>8s}" + "".join(f"{'ep ' + str(e):>11s}"
                                                       for e in TABLE_EPOCHS))  # fmt: skip
        for label, c in curves.items():
            vals = [c[e] for e in TABLE_EPOCHS]
            print(f"  {label:14s} {chosen[label]:8.0e}" + "".join(f"{v:11.4g}" for v in vals))
            rows.append([key, set_name, model, label, chosen[label], *vals,
                         "quick" if quick else "full"])  # fmt: skip
        plot(key, f"{TITLES[model]} - {set_name}", curves, chosen)
        # after every experiment: a long run's finished experiments survive
        save(rows, only)
    print(f"\nwrote adam_*.png, adam_paper.md, adam_paper.csv to {HERE} "
          f"({time.perf_counter() - t_start:.0f} s)")  # fmt: skip


def save(rows, only):
    """Write ``adam_paper.csv`` and ``.md``: ``rows``, plus (``only``) the other experiments'."""
    header = ["experiment", "data", "model", "method", "learning_rate",
              *[f"loss_epoch_{e}" for e in TABLE_EPOCHS], "grid"]  # fmt: skip
    path = os.path.join(HERE, "adam_paper.csv")
    if only and os.path.exists(path):  # keep the experiments not rerun
        ran = {r[0] for r in rows}
        with open(path, newline="") as fh:
            old = [r for r in list(csv.reader(fh))[1:] if r[0] not in ran]
        old = [[*r[:4], *map(float, r[4 : 5 + len(TABLE_EPOCHS)]),
                r[5 + len(TABLE_EPOCHS)] if len(r) > 5 + len(TABLE_EPOCHS) else "full"]
               for r in old]  # fmt: skip
        order = [e[0] for e in EXPERIMENTS]
        rows = sorted(old + rows, key=lambda r: order.index(r[0]))
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for r in rows:
            w.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in r])
    write_markdown(rows)


def plot(key, title, curves, chosen):
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for label, c in curves.items():
        ax.plot(np.arange(len(c)), c, label=f"{label} (lr {chosen[label]:.0e})", lw=1.6)
    ax.set_yscale("log")
    ax.set_xlabel("epochs (passes over the training set)")
    ax.set_ylabel("training loss (no dropout)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(HERE, f"adam_{key}.png"))
    plt.close(fig)


#: the paper's finding on its ConvNet (Kingma & Ba 2015, section 6.3, figure 3)
PAPER_CONV = (
    "The paper (CIFAR-10, figure 3): Adam and SGD with Nesterov momentum converge "
    "considerably faster than AdaGrad, Adam marginally ahead of SGD; AdaGrad's accumulated "
    "squared gradients shrink its steps in later epochs.  RMSProp and AdaDelta were not "
    "in that figure."
)
#: why the ConvNet rows have no K-FAC and PRONG (issue 16 asks for them where they apply)
CONV_NO_KFAC = (
    'K-FAC (`solver="kfac"`) and PRONG + SGD (`whiten=True`) are options of the MLPs '
    "only: their Kronecker factors and whitening are built per dense layer, and fastopt "
    "has neither the convolutional factors of KFC (Grosse & Martens 2016) nor a whitened "
    "convolution, so they are not in the ConvNet comparison; "
    "`benchmarks/kfac_compare.py` compares them with tuned Adam and SGD on this "
    "experiment's MLP (without dropout, which K-FAC refuses)."
)


def conv_finding(sub):
    """The paper's three ConvNet methods here, in the paper's terms (from the table)."""
    last = {r[3]: r[4 + len(TABLE_EPOCHS)] for r in sub}
    mid = {r[3]: r[2 + len(TABLE_EPOCHS)] for r in sub}  # epoch 10
    a, s, g = last["Adam"], last["SGD Nesterov"], last["AdaGrad"]

    def cmp(x, y):
        return "below" if x < y else "above"

    return (
        f"Here (epoch 45): Adam {a:.3g}, SGD Nesterov {s:.3g}, AdaGrad {g:.3g}; Adam is "
        f"{cmp(a, s)} SGD Nesterov (epoch 10: {mid['Adam']:.3g} vs {mid['SGD Nesterov']:.3g}) "
        f"and AdaGrad is {cmp(g, min(a, s))} the better of the two"
        + (" (the paper's order)." if a < s and g > a and g > s else " (not the paper's order).")
        + " The best of all five: "
        + min(last, key=last.get)
        + "."
    )


def write_markdown(rows):
    lines = [
        "# The Adam paper's comparisons with fastopt",
        "",
        "Generated by `docs/experiments/adam_paper.py` (see its docstring for the setup):",
        "training loss (full training set, no dropout) after the given number of epochs,",
        "minibatch 128, each method at the best learning rate of its grid.",
        "",
    ]
    for key in dict.fromkeys(r[0] for r in rows):
        sub = [r for r in rows if r[0] == key]
        lines += [f"## {key}: {TITLES[sub[0][2]]} on {sub[0][1]}", "",
                  f"![training loss](adam_{key}.png)", "",
                  "| method | lr | " + " | ".join(f"epoch {e}" for e in TABLE_EPOCHS) + " |",
                  "|---|---|" + "---|" * len(TABLE_EPOCHS)]  # fmt: skip
        if sub[0][-1] == "quick":
            lines[-2:-2] = ["(learning rates from the reduced grid of `--quick`.)", ""]
        best = [min(r[5 + j] for r in sub) for j in range(len(TABLE_EPOCHS))]
        for r in sub:
            vals = r[5 : 5 + len(TABLE_EPOCHS)]
            cells = [f"**{v:.4g}**" if v == best[j] else f"{v:.4g}" for j, v in enumerate(vals)]
            lines.append(f"| {r[3]} | {r[4]:.0e} | " + " | ".join(cells) + " |")
        order = sorted(sub, key=lambda r: r[4 + len(TABLE_EPOCHS)])
        lines += ["", "Ranking by the epoch-45 loss: "
                  + " < ".join(r[3] for r in order) + "."]  # fmt: skip
        if sub[0][2] == "conv":
            lines += ["", PAPER_CONV, "", conv_finding(sub), "", CONV_NO_KFAC]
        lines.append("")
    with open(os.path.join(HERE, "adam_paper.md"), "w") as fh:
        fh.write("\n".join(lines))


if __name__ == "__main__":
    argv = sys.argv[1:]
    keys = [a for a in argv if not a.startswith("--")]
    unknown = set(keys) - {e[0] for e in EXPERIMENTS}
    if unknown:
        raise SystemExit(f"unknown experiments {sorted(unknown)}; known: "
                         f"{[e[0] for e in EXPERIMENTS]}")  # fmt: skip
    main(only=set(keys) if "--only" in argv else None, quick="--quick" in argv)
