r"""K-FAC's compiled statistics: loss, gradient and the Kronecker factors in one pass.

For a dense layer :math:`s = \bar a^T W` (input :math:`\bar a = [a; 1]`
with the bias row) of a network trained on the mean loss
:math:`\frac1n\sum_i \ell(o_i, y_i)`, the Fisher block of :math:`W` is
approximated (Martens & Grosse 2015, section 3) by

.. math::

    F_l \approx \bar A_{l} \otimes G_{l}, \qquad
    \bar A_l = \frac1n \sum_i \bar a_i \bar a_i^T, \qquad
    G_l = \frac1n \sum_i g_i g_i^T,

with :math:`g_i = \partial \ell(o_i, \tilde y_i) / \partial s_i` the
back-propagated derivative for a target :math:`\tilde y_i` *sampled from the
model's predictive distribution* (softmax: a category drawn from
:math:`p_i`; logistic: a Bernoulli draw; squared error:
:math:`o_i + \varepsilon`, :math:`\varepsilon \sim N(0, I)`), so that
:math:`E[g g^T]` is the Fisher, not the empirical Fisher.

:func:`kfac_fg_stats` runs one forward pass and two backward passes (the
true targets for the gradient, the sampled ones for :math:`G_l`); the
networks are those of :mod:`fastopt.models._mlp_kernels` without dropout and
batch normalisation (the estimator refuses both with ``solver="kfac"``).
Samples are drawn from numba's generator (:func:`~._mlp_kernels.seed`).
"""

import math

import numpy as np

from .._jit import inline, kernel
from ._linear_kernels import LOGISTIC, SOFTMAX, _row_loss, _sigmoid
from ._mlp_kernels import _backward, _dact, _forward, _offsets, _penalty, _weights


@inline
def _sampled_derivatives(loss, O):
    """Per-sample output derivatives for targets drawn from the model."""
    n, K = O.shape
    D = np.empty_like(O)
    for i in range(n):
        if loss == SOFTMAX:
            m = O[i, 0]
            for k in range(1, K):
                if O[i, k] > m:
                    m = O[i, k]
            tot = 0.0
            for k in range(K):
                D[i, k] = math.exp(O[i, k] - m)
                tot += D[i, k]
            u = np.random.random() * tot  # noqa: NPY002 - numba's generator
            pick = K - 1
            acc = 0.0
            for k in range(K):
                acc += D[i, k]
                if u < acc:
                    pick = k
                    break
            for k in range(K):
                D[i, k] = D[i, k] / tot - (1.0 if k == pick else 0.0)
        elif loss == LOGISTIC:
            for k in range(K):
                p = _sigmoid(O[i, k])
                D[i, k] = p - (1.0 if np.random.random() < p else 0.0)  # noqa: NPY002
        else:
            for k in range(K):
                D[i, k] = -np.random.standard_normal()  # noqa: NPY002
    return D


@inline
def _with_ones(H):
    n, a = H.shape
    B = np.empty((n, a + 1))
    B[:, :a] = H
    B[:, a] = 1.0
    return B


@kernel
def kfac_fg_stats(w, X, Y, sizes, activation, loss, lam, stats):
    """``(f, g, As, Gs)``: mean loss, gradient and the factors of the first ``stats`` rows.

    ``As[l]`` is :math:`\\bar A_l`, ``(sizes[l] + 1)`` square (the last row
    and column are the bias's), ``Gs[l]`` is :math:`G_l`, ``sizes[l+1]``
    square, both averaged over rows ``[0, stats)`` (the paper's statistics
    subset of the minibatch); both lists are empty when ``stats`` is 0.
    """
    offs = _offsets(sizes, False)
    O, Hin, Hact, Zh, Sd, Ms = _forward(w, X, sizes, activation, 0.0, False, offs)
    n, K = O.shape
    nl = len(sizes) - 1
    As = [np.empty((0, 0))]
    Gs = [np.empty((0, 0))]
    As.pop()
    Gs.pop()
    m = min(max(stats, 0), n)
    if m > 0:
        inv = 1.0 / m
        D = _sampled_derivatives(loss, O[:m])
        for l in range(nl):
            B = _with_ones(Hin[l][:m])
            As.append(np.dot(B.T, B) * inv)
            Gs.append(np.empty((0, 0)))
        Gs[nl - 1] = np.dot(D.T, D) * inv
        dH = np.dot(D, _weights(w, sizes, offs, nl - 1).T)
        for l in range(nl - 2, -1, -1):
            Hp = Hact[l + 1]
            for i in range(m):
                for j in range(dH.shape[1]):
                    dH[i, j] *= _dact(activation, Hp[i, j])
            Gs[l] = np.dot(dH.T, dH) * inv
            if l > 0:
                dH = np.dot(dH, _weights(w, sizes, offs, l).T)
    f = 0.0
    for i in range(n):
        f += _row_loss(loss, O, Y, i, K)
    inv = 1.0 / max(n, 1)
    for i in range(n):
        for k in range(K):
            O[i, k] *= inv
    g = np.empty(w.shape[0])
    _backward(w, g, O, Hin, Hact, Zh, Sd, Ms, sizes, activation, 0.0, False, offs)
    return f * inv + _penalty(w, g, sizes, offs, lam, w), g, As, Gs


@kernel
def layer_inputs(w, X, sizes, activation):
    """Every dense layer's input (``[X, H_1, ..., H_L]``), no dropout or batch norm."""
    offs = _offsets(sizes, False)
    return _forward(w, X, sizes, activation, 0.0, False, offs)[1]


__all__ = ["kfac_fg_stats", "layer_inputs"]
