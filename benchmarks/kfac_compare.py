"""K-FAC against best-tuned Adam on the Adam-paper MLPs, one thread (issue 16's target).

The MLP of ``docs/experiments/adam_paper.py`` (two hidden layers of 256 ReLU
units, minibatch 128, L2 1e-4) *without dropout* (K-FAC's Kronecker factors
model a deterministic network; ``solver="kfac"`` refuses dropout), on
digits/16 and MNIST-1D.  Adam's learning rate is the best of a grid by its
45-epoch training loss; the target: K-FAC reaches that loss in at most 15
epochs (1/3) and in at most Adam's 45-epoch wall time.

The loss is the estimators' ``loss_curve_`` (the mean minibatch loss of each
epoch, the same measure for both).  Times are fits after a warm-up fit (the
compiled kernels loaded).  Run with::

    python benchmarks/kfac_compare.py [--quick] [--kfac-only | --prong-only | --spread]
        [--data digits | --data MNIST-1D] [--seeds 0,1,2]

Second section: PRONG + SGD (``whiten=True``) against plain SGD; target:
PRONG + SGD reaches SGD's 45-epoch loss in at most 22 epochs.  Both are
tuned on one learning-rate grid, a 1-2-5 series (SGD's best rate must be
inside it: the largest rates diverge); PRONG also over its own options,
``whiten_eps`` (0.01, 0.1, 0.3; its stable rates grow with it),
``whiten_input_eps`` (None, i.e. ``whiten_eps``, or 0.03) and
``whiten_every`` (10, 50): 7 SGD runs and 84 PRONG runs per seed.
``--seeds 0,1,2``: the networks' seeds (initial weights and minibatch
order; the data sets are fixed), each tuned on its own.

Third (after the second, or alone with ``--spread``): the eigenvalue spread of each layer's input
covariance and output-derivative factor after 10 epochs of SGD, why PRONG
gains less on MNIST-1D than on digits.

``--quick``: small grids (Adam 1e-3, 3e-3, 1e-2: a first 3e-4..3e-3 run
chose 3e-3; SGD and PRONG 0.2 ... 2, PRONG's ``whiten_eps`` 0.01 and 0.3,
``whiten_every`` 50).
"""

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_v] = "1"

import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
from scipy.optimize import OptimizeWarning  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402

from fastopt.models import MLPClassifier  # noqa: E402

EPOCHS = 45
BATCH = 128


def datasets():
    """``{name: (X, y)}``; ``--data NAME`` on the command line keeps one."""
    keep = sys.argv[sys.argv.index("--data") + 1] if "--data" in sys.argv else None
    out = {k: v for k, v in _datasets().items() if keep is None or k == keep}
    if not out:
        raise SystemExit(f"--data {keep!r}: no such data set")
    return out


def _datasets():
    X, y = load_digits(return_X_y=True)
    out = {"digits": (np.ascontiguousarray(X / 16.0), y)}
    try:
        from mnist1d.data import get_dataset_args, make_dataset

        d = make_dataset(get_dataset_args())
        out["MNIST-1D"] = (np.ascontiguousarray(d["x"], dtype=np.float64), d["y"])
    except ImportError:  # pragma: no cover - optional
        print("mnist1d not installed: digits only")
    return out


def fit(X, y, solver, options, epochs, batch=BATCH, extra=None, seed=0):
    clf = MLPClassifier((256, 256), solver=solver, solver_options=options, batch_size=batch,
                        max_iter=epochs, n_iter_no_change=None, alpha=1e-4,
                        random_state=seed, **(extra or {}))  # fmt: skip
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # "gtol is ignored in minibatch mode": expected, the runs are by epochs
        warnings.simplefilter("ignore", OptimizeWarning)
        clf.fit(X, y)
    t = time.perf_counter() - t
    # a run that diverged stops early (a NaN loss): the rest of its curve is inf
    curve = list(clf.loss_curve_) + [np.inf] * (epochs - len(clf.loss_curve_))
    return np.array(curve), t


#: epochs at which the per-epoch comparison prints the training loss
SHOWN = (1, 5, 10, 15, 22, 30, 45)


def seeds():
    """The networks' seeds, ``--seeds 0,1,2`` on the command line (default 0)."""
    if "--seeds" not in sys.argv:
        return (0,)
    return tuple(int(s) for s in sys.argv[sys.argv.index("--seeds") + 1].split(","))


def reach(curve, target):
    """The first epoch (1-based) whose loss is <= ``target``, or None."""
    hit = np.nonzero(curve <= target)[0]
    return int(hit[0]) + 1 if len(hit) else None


def prong(quick=False):
    """PRONG + SGD against best-tuned plain SGD (target: SGD's 45-epoch loss in <= 1/2)."""
    # one grid for both, a 1-2-5 series: the old half-decade grid
    # (0.01 ... 1.0) had SGD's best at its top edge on MNIST-1D, and SGD at
    # 2.0 ends lower than at 1.0 (at 5.0 it diverges, at 3.0 too)
    grid = (0.2, 0.5, 1.0, 2.0) if quick else (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
    # whitening scales a direction of variance lambda by 1/sqrt(lambda +
    # eps): the low-variance directions limit PRONG's stable rate (about
    # 0.2-0.3 at eps 0.01, 0.5-1 at 0.1, 2 at 0.3 on MNIST-1D), so eps is
    # tuned with the rate, as the paper treats it (a hyper-parameter)
    epss = (0.01, 0.3) if quick else (0.01, 0.1, 0.3)
    # the data's own eps (None: whiten_eps): the data do not move between
    # re-estimations, so they can be whitened more sharply than the hidden
    # layers' inputs; and re-estimations every 10 updates as well as 50 (the
    # hidden inputs move least between them)
    input_epss = (None, 0.03)
    everys = (50,) if quick else (10, 50)
    options = [(eps, eps0, T) for T in everys for eps0 in input_epss for eps in epss]
    n_prong = len(grid) * len(options)
    print(f"\nMLP 2x256 ReLU, no dropout, minibatch {BATCH}, one thread; SGD and PRONG grid "
          f"{grid}; PRONG whiten_eps {epss}, whiten_input_eps {input_epss}, whiten_every "
          f"{everys}: {len(grid)} SGD runs, {n_prong} PRONG runs per seed")  # fmt: skip
    for name, (X, y) in datasets().items():
        fit(X, y, "sgd", {"learning_rate": 0.1}, 1)
        for seed in seeds():
            runs = {lr: fit(X, y, "sgd", {"learning_rate": lr}, EPOCHS, seed=seed) for lr in grid}
            lr = min(runs, key=lambda r: runs[r][0][-1])
            curve, t_sgd = runs[lr]
            target = curve[-1]
            by_lr = ", ".join(f"{r:g} {c[-1]:.3g}" for r, (c, _) in runs.items())
            print(f"\n{name}, seed {seed}: SGD best lr {lr:g}: 45-epoch loss {target:.3g} in "
                  f"{t_sgd:.2f} s (45-epoch loss by lr: {by_lr})")  # fmt: skip
            best = None
            for eps, eps0, T in options:
                for plr in grid:
                    pc, t_p = fit(X, y, "sgd", {"learning_rate": plr}, EPOCHS, seed=seed,
                                  extra={"whiten": True, "whiten_every": T, "whiten_eps": eps,
                                         "whiten_input_eps": eps0})  # fmt: skip
                    if not np.isfinite(pc[-1]):
                        continue  # diverged
                    e = reach(pc, target)
                    opts = f"lr {plr:g}, eps {eps:g}, input eps {eps0}, T {T}"
                    print(f"  PRONG + SGD ({opts}): reaches it "
                          + (f"after {e} epochs" if e else "not within 45 epochs")
                          + f"; 45-epoch loss {pc[-1]:.3g}, {t_p:.2f} s")  # fmt: skip
                    key = (e or EPOCHS + 1, pc[-1])
                    if best is None or key < best[0]:
                        best = (key, opts, pc)
            print(f"  loss by epoch {SHOWN}:")
            print(f"    SGD (lr {lr:g})                     "
                  + " ".join(f"{curve[e - 1]:.2e}" for e in SHOWN))  # fmt: skip
            if best is None:
                print("    PRONG + SGD: every run diverged")
                continue
            (e, _), opts, pc = best
            print(f"    PRONG + SGD ({opts})   "
                  + " ".join(f"{pc[k - 1]:.2e}" for k in SHOWN))  # fmt: skip
            met = "met" if e <= EPOCHS // 2 else "NOT met"
            print("  best PRONG + SGD reaches SGD's 45-epoch loss after "
                  + (f"{e} epochs" if e <= EPOCHS else "more than 45 epochs")
                  + f" (target <= {EPOCHS // 2}): {met}")  # fmt: skip


def spread(epochs=10, lr=0.3):
    """Why PRONG gains less on MNIST-1D: the spread of each layer's Fisher factors.

    After ``epochs`` of plain SGD (``lr``), the largest over the median
    eigenvalue of every layer's input covariance (what PRONG whitens) and of
    its output-derivative factor :math:`G` (what PRONG leaves alone, and
    K-FAC inverts), on the whole training set.
    """
    from fastopt.models import _mlp_kernels as mk
    from fastopt.models._kfac_kernels import kfac_fg_stats

    print(f"\nFactor spread (max / median eigenvalue) after {epochs} epochs of SGD, lr {lr}")
    for name, (X, y) in datasets().items():
        clf = MLPClassifier((256, 256), solver="sgd", solver_options={"learning_rate": lr},
                            batch_size=BATCH, max_iter=epochs, n_iter_no_change=None,
                            random_state=0)  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(X, y)
        Y = np.eye(len(clf.classes_))[np.searchsorted(clf.classes_, y)]
        mk.seed(0)
        _, _, As, Gs = kfac_fg_stats(clf.params_, X, Y, clf.sizes_, mk.RELU, mk.SOFTMAX, 0.0,
                                     len(X))  # fmt: skip

        def ratio(M):
            e = np.linalg.eigvalsh(M)
            e = e[e > 1e-12 * e.max()]
            return f"{e.max() / np.median(e):.0f}"

        # the input covariance: the uncentred factor minus the mean's outer product
        cov = [A[:-1, :-1] - np.outer(A[:-1, -1], A[:-1, -1]) for A in As]
        print(f"  {name}: input covariance {', '.join(map(ratio, cov))}; "
              f"G {', '.join(map(ratio, Gs))} (layers 1, 2, 3)")  # fmt: skip


def main(quick=False):
    grid = (1e-3, 3e-3, 1e-2) if quick else (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
    print(f"MLP 2x256 ReLU, no dropout, minibatch {BATCH}, one thread; Adam grid {grid}")
    for name, (X, y) in datasets().items():
        fit(X, y, "adam", {"learning_rate": 1e-3}, 1)  # warm-up (compile / load)
        fit(X, y, "kfac", None, 1)
        best = None
        for lr in grid:
            curve, t = fit(X, y, "adam", {"learning_rate": lr}, EPOCHS)
            if best is None or curve[-1] < best[1][-1]:
                best = (lr, curve, t)
        lr, curve, t_adam = best
        target = curve[-1]
        kcurve, t_kfac_full = fit(X, y, "kfac", None, EPOCHS)
        hit = np.nonzero(kcurve <= target)[0]
        print(f"\n{name}: Adam best lr {lr:g}: 45-epoch loss {target:.4g} in {t_adam:.2f} s")
        print("  K-FAC loss by epoch (1, 5, 10, 15, 30, 45): "
              + ", ".join(f"{kcurve[e - 1]:.3g}" for e in (1, 5, 10, 15, 30, 45)))  # fmt: skip
        if len(hit) == 0:
            print(f"  K-FAC does not reach it in {EPOCHS} epochs ({t_kfac_full:.2f} s)")
            continue
        e = int(hit[0]) + 1
        _, t_kfac = fit(X, y, "kfac", None, e)
        print(f"  K-FAC reaches it after {e} epochs ({e / EPOCHS:.2f} of 45; target <= 1/3) "
              f"in {t_kfac:.2f} s ({t_kfac / t_adam:.2f} of Adam's time; target <= 1)")  # fmt: skip


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # progress visible when redirected
    quick = "--quick" in sys.argv
    if "--spread" in sys.argv:
        spread()
        sys.exit()
    if "--prong-only" not in sys.argv:
        main(quick=quick)
    if "--kfac-only" not in sys.argv:
        prong(quick=quick)
        spread()
