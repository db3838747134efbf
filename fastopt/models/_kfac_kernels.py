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
from ._mlp_kernels import (
    _HACT,
    _backward,
    _block,
    _dact,
    _forward,
    _layer_input,
    _offsets,
    _output_hessian,
    _penalty,
    _weights,
)


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


@inline
def _factor_stats(w, O, X, ws, wo, sizes, activation, loss, offs, m):
    """``(As, Gs)`` of the first ``m`` rows (empty lists when ``m`` is 0)."""
    nl = len(sizes) - 1
    As = [np.empty((0, 0))]
    Gs = [np.empty((0, 0))]
    As.pop()
    Gs.pop()
    if m > 0:
        inv = 1.0 / m
        D = _sampled_derivatives(loss, O[:m])
        for l in range(nl):
            B = _with_ones(_layer_input(X, ws, wo, l, sizes)[:m])
            As.append(np.dot(B.T, B) * inv)
            Gs.append(np.empty((0, 0)))
        Gs[nl - 1] = np.dot(D.T, D) * inv
        dH = np.dot(D, _weights(w, sizes, offs, nl - 1).T)
        for l in range(nl - 2, -1, -1):
            Hp = _block(ws, wo, l, _HACT, X.shape[0], sizes[l + 1])
            for i in range(m):
                for j in range(dH.shape[1]):
                    dH[i, j] *= _dact(activation, Hp[i, j])
            Gs[l] = np.dot(dH.T, dH) * inv
            if l > 0:
                dH = np.dot(dH, _weights(w, sizes, offs, l).T)
    return As, Gs


@inline
def _loss_grad(w, O, Y, X, ws, wo, sizes, activation, loss, lam, offs):
    """Mean loss and gradient from a forward pass (``O`` is overwritten)."""
    n, K = O.shape
    f = 0.0
    for i in range(n):
        f += _row_loss(loss, O, Y, i, K)
    inv = 1.0 / max(n, 1)
    for i in range(n):
        for k in range(K):
            O[i, k] *= inv
    g = np.empty(w.shape[0])
    _backward(w, g, O, X, ws, wo, sizes, activation, 0.0, False, offs)
    return f * inv + _penalty(w, g, sizes, offs, lam, w), g


@inline
def _gram(w, U, r, O, X, ws, wo, sizes, activation, loss, offs, lam, damping):
    """The damped Gauss-Newton Gram matrix of ``U[:r]`` on the rows of ``O``."""
    nl = len(sizes) - 1
    n, K = O.shape
    # dH holds the r directions' derivatives of a layer's output, stacked by rows
    dH = np.empty((0, 0))
    for l in range(nl):
        a = sizes[l]
        b = sizes[l + 1]
        Vs = np.empty((a, r * b))
        for q in range(r):
            Vs[:, q * b : (q + 1) * b] = _weights(U[q], sizes, offs, l)
        dA1 = np.dot(_layer_input(X, ws, wo, l, sizes)[:n], Vs)
        dA = np.empty((r * n, b))
        for q in range(r):
            dA[q * n : (q + 1) * n] = dA1[:, q * b : (q + 1) * b]
        if l > 0:
            dA += np.dot(dH, _weights(w, sizes, offs, l))
        bo = offs[l, 1]
        if l < nl - 1:
            Hp = _block(ws, wo, l, _HACT, X.shape[0], b)
            for q in range(r):
                for i in range(n):
                    for j in range(b):
                        dA[q * n + i, j] = (dA[q * n + i, j] + U[q, bo + j]) * _dact(
                            activation, Hp[i, j]
                        )
        else:
            for q in range(r):
                for i in range(n):
                    for j in range(b):
                        dA[q * n + i, j] += U[q, bo + j]
        dH = dA
    Q = np.zeros((r, r))
    inv = 1.0 / max(n, 1)
    for p in range(r):
        HJ = dH[p * n : (p + 1) * n].copy()
        _output_hessian(loss, O, HJ)
        for q in range(p, r):
            acc = 0.0
            for i in range(n):
                for k in range(K):
                    acc += HJ[i, k] * dH[q * n + i, k]
            # the penalty (weights only) and the damping
            pen = 0.0
            for l in range(nl):
                o = offs[l, 0]
                for j in range(o, o + sizes[l] * sizes[l + 1]):
                    pen += U[p, j] * U[q, j]
            dot = 0.0
            for j in range(U.shape[1]):
                dot += U[p, j] * U[q, j]
            Q[p, q] = acc * inv + lam * pen + damping * dot
            Q[q, p] = Q[p, q]
    return Q


@inline
def _propose(g, inv, sizes, offs, out):
    """``out <- -(A^-1 [grad W; grad b] G^-1)`` layer by layer, in ``inv``'s dtype."""
    o = 0
    for l in range(len(sizes) - 1):
        a = sizes[l]
        b = sizes[l + 1]
        Ai = inv[o : o + (a + 1) * (a + 1)].reshape((a + 1, a + 1))
        o += (a + 1) * (a + 1)
        Gi = inv[o : o + b * b].reshape((b, b))
        o += b * b
        Gr = np.empty((a + 1, b), dtype=inv.dtype)
        ow = offs[l, 0]
        ob = offs[l, 1]
        for i in range(a):
            for j in range(b):
                Gr[i, j] = g[ow + i * b + j]
        for j in range(b):
            Gr[a, j] = g[ob + j]
        V = np.dot(np.dot(Ai, Gr), Gi)
        for i in range(a):
            for j in range(b):
                out[ow + i * b + j] = -V[i, j]
        for j in range(b):
            out[ob + j] = -V[a, j]


@kernel
def kfac_fg_stats(w, X, Y, sizes, activation, loss, lam, stats):
    """``(f, g, As, Gs)``: mean loss, gradient and the factors of the first ``stats`` rows.

    ``As[l]`` is :math:`\\bar A_l`, ``(sizes[l] + 1)`` square (the last row
    and column are the bias's), ``Gs[l]`` is :math:`G_l`, ``sizes[l+1]``
    square, both averaged over rows ``[0, stats)`` (the paper's statistics
    subset of the minibatch); both lists are empty when ``stats`` is 0.
    """
    offs = _offsets(sizes, False)
    O, ws, wo = _forward(w, X, sizes, activation, 0.0, False, offs)
    m = min(max(stats, 0), O.shape[0])
    As, Gs = _factor_stats(w, O, X, ws, wo, sizes, activation, loss, offs, m)
    f, g = _loss_grad(w, O, Y, X, ws, wo, sizes, activation, loss, lam, offs)
    return f, g, As, Gs


@kernel
def kfac_quadratic(w, U, X, sizes, activation, loss, lam, damping):
    r"""The damped Gauss-Newton Gram matrix of the directions ``U`` (rows) on ``X``.

    Returns the ``r x r`` matrix :math:`Q_{pq} = u_p^T (F + \lambda P +
    \text{damping}\, I)\, u_q`, :math:`F = \frac1n \sum_i J_i^T H_i J_i`
    the Gauss-Newton matrix of the batch (:math:`J_i` the Jacobian of row
    :math:`i`'s outputs, :math:`H_i` the output loss's Hessian) and :math:`P`
    the mask of the penalised weights, as in :func:`~._mlp_kernels.mlp_gn`.
    Only forward-mode products are needed (the rescaling of Martens & Grosse
    2015, section 7, needs :math:`u^T F v = (J u)^T H (J v)`, not
    :math:`F v`): one forward pass and one R-operator pass per direction,
    the directions stacked in each layer's matrix products; no
    back-propagation.
    """
    offs = _offsets(sizes, False)
    O, ws, wo = _forward(w, X, sizes, activation, 0.0, False, offs)
    return _gram(w, U, U.shape[0], O, X, ws, wo, sizes, activation, loss, offs, lam, damping)


@kernel
def kfac_proposal(g, inv, sizes):
    r"""K-FAC's step :math:`-\breve F^{-1} g`, layer by layer.

    With a layer's gradient as the matrix :math:`\nabla_{\bar W} h`
    (``(a + 1, b)``: the weights, then the bias row), :math:`(\bar A \otimes
    G)^{-1} \operatorname{vec}(\nabla) = \operatorname{vec}(\bar A^{-1}
    \nabla G^{-1})` for the row-major ``vec``.  ``inv`` holds every layer's
    :math:`\bar A_l^{-1}` then :math:`G_l^{-1}`, row-major, one after the
    other (:func:`~._kfac.pack`); the products run in its dtype.
    """
    out = np.empty(g.shape[0])
    _propose(g, inv, sizes, _offsets(sizes, False), out)
    return out


@kernel
def kfac_iteration(w, U, r, X, Y, sizes, activation, loss, lam, damping, stats, rows, inv):
    """One K-FAC iteration's compiled work: ``(f, g, Q, As, Gs)``, ``U[0]`` the proposal.

    One forward pass serves the loss and gradient (:func:`kfac_fg_stats`,
    factors of the first ``stats`` rows), the proposal ``U[0] <-``
    :func:`kfac_proposal` of the gradient with the packed inverses ``inv``,
    and the Gram matrix ``Q`` (:func:`kfac_quadratic`) of ``U[:r]`` (the
    proposal and the previous update) on the first ``rows`` rows.
    """
    offs = _offsets(sizes, False)
    O, ws, wo = _forward(w, X, sizes, activation, 0.0, False, offs)
    n = O.shape[0]
    m = min(max(stats, 0), n)
    As, Gs = _factor_stats(w, O, X, ws, wo, sizes, activation, loss, offs, m)
    mq = min(max(rows, 1), n)
    Oq = O[:mq].copy()  # the logits, before the loss overwrites O
    f, g = _loss_grad(w, O, Y, X, ws, wo, sizes, activation, loss, lam, offs)
    _propose(g, inv, sizes, offs, U[0])
    Q = _gram(w, U, r, Oq, X, ws, wo, sizes, activation, loss, offs, lam, damping)
    return f, g, Q, As, Gs


@kernel
def layer_inputs(w, X, sizes, activation):
    """Every dense layer's input (``[X, H_1, ..., H_L]``), no dropout or batch norm."""
    offs = _offsets(sizes, False)
    _, ws, wo = _forward(w, X, sizes, activation, 0.0, False, offs)
    out = [X]
    for l in range(1, len(sizes) - 1):
        out.append(_layer_input(X, ws, wo, l, sizes))
    return out


__all__ = [
    "kfac_fg_stats",
    "kfac_iteration",
    "kfac_proposal",
    "kfac_quadratic",
    "layer_inputs",
]
