"""ConvNetClassifier's forward+backward pass against torch CPU, one thread.

Issue 16's target: fastopt's fused loss-and-gradient kernel
(:func:`fastopt.models._conv_kernels.conv_fg`) costs at most 2x torch's
forward + ``backward()`` per sample on the same architecture (the ConvNets
of ``docs/experiments/adam_paper.py``), one thread, minibatch of 128.

Run with::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1 \\
        python benchmarks/conv_compare.py

Prints, per architecture, microseconds per sample (median of repeats) and
the ratio fastopt / torch.
"""

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from fastopt.models import _conv_kernels as ck  # noqa: E402
from fastopt.models import _mlp_kernels as mk  # noqa: E402

torch.set_num_threads(1)

#: (name, (H, W), channels, [(filters, kh, kw, pool_h, pool_w)], dense hidden, classes)
ARCHS = [
    ("digits 8x8, conv16-3x3/pool2, conv32-3x3/pool2, fc64", (8, 8), 1,
     [(16, 3, 3, 2, 2), (32, 3, 3, 2, 2)], (64,), 10),
    ("MNIST-1D 40, conv16-5/pool2, conv32-5/pool2, fc64", (1, 40), 1,
     [(16, 1, 5, 1, 2), (32, 1, 5, 1, 2)], (64,), 10),
    ("MNIST 28x28, conv32-5x5/pool2, conv64-5x5/pool2, fc128", (28, 28), 1,
     [(32, 5, 5, 2, 2), (64, 5, 5, 2, 2)], (128,), 10),
]  # fmt: skip


def best_time(fn, repeats, inner):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t) / inner)
    return float(np.median(times))


def torch_model(hw, C, layers, hidden, K):
    one_d = hw[0] == 1
    mods = []
    for F, kh, kw, qh, qw in layers:
        if one_d:
            mods += [torch.nn.Conv1d(C, F, kw, padding=kw // 2), torch.nn.ReLU(),
                     torch.nn.MaxPool1d(qw)]  # fmt: skip
        else:
            mods += [torch.nn.Conv2d(C, F, (kh, kw), padding=(kh // 2, kw // 2)),
                     torch.nn.ReLU(), torch.nn.MaxPool2d((qh, qw))]  # fmt: skip
        C = F
    mods.append(torch.nn.Flatten())
    net = torch.nn.Sequential(*mods).double()
    with torch.no_grad():
        flat = net(torch.zeros(1, 1, *((hw[1],) if one_d else hw), dtype=torch.float64)).shape[1]
    sizes = (flat, *hidden, K)
    for m, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        mods.append(torch.nn.Linear(a, b))
        if m < len(sizes) - 2:
            mods.append(torch.nn.ReLU())
    return torch.nn.Sequential(*mods).double()


def main(batch=128):
    rng = np.random.default_rng(0)
    print(f"forward+backward per sample, minibatch {batch}, float64, one thread")
    print(f"{'architecture':58s} {'fastopt':>10s} {'torch':>10s} {'ratio':>6s}")
    for name, hw, C, layers, hidden, K in ARCHS:
        geom, flat = ck.conv_geometry(hw, C, layers, "same")
        dense = (flat, *hidden, K)
        X = rng.standard_normal((batch, hw[0] * hw[1] * C))
        Y = np.eye(K)[rng.integers(0, K, batch)]
        w = 0.1 * rng.standard_normal(ck.n_params(geom, dense))
        ck.conv_fg(w, X, Y, geom, dense, mk.SOFTMAX, 1e-4, 0.0)  # compile / load
        args = (w, X, Y, geom, dense, mk.SOFTMAX, 1e-4, 0.0)
        t_fo = best_time(lambda args=args: ck.conv_fg(*args), 7, 5)
        net = torch_model(hw, C, layers, hidden, K)
        Xt = torch.tensor(X).reshape(batch, C, *((hw[1],) if hw[0] == 1 else hw))
        yt = torch.tensor(Y.argmax(1))

        def step(net=net, Xt=Xt, yt=yt):
            net.zero_grad()
            torch.nn.functional.cross_entropy(net(Xt), yt).backward()

        step()
        t_t = best_time(step, 7, 5)
        print(f"{name:58s} {1e6 * t_fo / batch:8.2f}us {1e6 * t_t / batch:8.2f}us "
              f"{t_fo / t_t:6.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
