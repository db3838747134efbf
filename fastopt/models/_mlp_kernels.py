r"""Loss, gradient and curvature kernels of the multi-layer perceptrons.

The network: ``L`` hidden layers and a linear output layer,

.. math::

    A_l = \mathrm{BN}_l(H_l W_l) \text{ or } H_l W_l + b_l, \qquad
    H_{l+1} = \mathrm{drop}(\sigma(A_l)), \qquad O = H_L W_L + b_L,

with :math:`H_0 = X`, :math:`\sigma` the activation, dropout (inverted: kept
units are scaled by :math:`1/(1-p)`) in training only, and batch
normalisation :math:`\mathrm{BN}(Z) = \gamma \odot (Z - \mu)/\sqrt{s^2 +
\epsilon} + \beta` with the statistics :math:`\mu, s^2` of the batch (the
bias :math:`b_l` is then redundant and replaced by :math:`\beta`).  The
objective is the mean of the output loss over the rows given plus an L2
penalty on the weight matrices (not on biases, :math:`\gamma`, :math:`\beta`),

.. math::

    f(w) = \frac1n \sum_i \ell(O_i, Y_i) + \frac{\lambda}{2} \sum_l \|W_l\|_F^2,

with :math:`\ell` the squared error :math:`\tfrac12\|o - y\|^2`, the binary
log loss of a logistic output unit, or the softmax cross-entropy.

Parameters are one flat vector, layer after layer: ``W_l`` (row-major,
shape ``(sizes[l], sizes[l+1])``), then ``gamma_l, beta_l`` (hidden layers
with batch normalisation) or ``b_l``.  The kernels' arguments are

``args = (X, Y, sizes, activation, loss, lam, dropout, batch_norm)``

with ``sizes`` a tuple of ints (not an array: minibatching slices every array
in ``args`` along axis 0).  Dense layers are BLAS matrix products
(``np.dot`` inside ``@njit``); the element-wise work is in loops.

Dropout draws from numba's own generator (seed it with :func:`seed`); the
curvature kernels use the network without dropout, whose masks a separate
call could not reproduce.
"""

import math

import numba
import numpy as np

from .. import _jit
from ._linear_kernels import LOGISTIC, SOFTMAX, SQUARED, _row_loss, _sigmoid

#: activation identifiers (the ``activation`` argument), scikit-learn's names
IDENTITY, LOGISTIC_ACT, TANH, RELU = 0, 1, 2, 3
ACTIVATIONS = {"identity": IDENTITY, "logistic": LOGISTIC_ACT, "tanh": TANH, "relu": RELU}
#: batch normalisation's epsilon (Ioffe & Szegedy 2015; torch's default)
BN_EPS = 1e-5

_KERNEL = {"cache": _jit.CACHE, "error_model": "numpy", "nogil": True}
_INLINE = {"inline": "always", "error_model": "numpy"}


def _kernel(fn):
    return numba.njit(**_KERNEL)(fn)


def _inline(fn):
    return numba.njit(**_INLINE)(fn)


def n_params(sizes, batch_norm):
    """Length of the flat parameter vector of a network with layer ``sizes``."""
    total = 0
    for l in range(len(sizes) - 1):
        a, b = sizes[l], sizes[l + 1]
        hidden = l < len(sizes) - 2
        total += a * b + (2 * b if (hidden and batch_norm) else b)
    return total


@_inline
def _offsets(sizes, batch_norm):
    """``offs[l] = (W offset, bias/beta offset, gamma offset or -1)``."""
    nl = len(sizes) - 1
    offs = np.empty((nl, 3), dtype=np.int64)
    off = 0
    for l in range(nl):
        a = sizes[l]
        b = sizes[l + 1]
        offs[l, 0] = off
        off += a * b
        if l < nl - 1 and batch_norm:
            offs[l, 2] = off
            off += b
        else:
            offs[l, 2] = -1
        offs[l, 1] = off
        off += b
    return offs


@_inline
def _weights(w, sizes, offs, l):
    a = sizes[l]
    b = sizes[l + 1]
    return w[offs[l, 0] : offs[l, 0] + a * b].reshape((a, b))


@_inline
def _activate(kind, A):
    """``sigma(A)``, a new array."""
    H = np.empty_like(A)
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            a = A[i, j]
            if kind == RELU:
                H[i, j] = a if a > 0.0 else 0.0
            elif kind == TANH:
                H[i, j] = math.tanh(a)
            elif kind == LOGISTIC_ACT:
                H[i, j] = _sigmoid(a)
            else:
                H[i, j] = a
    return H


@_inline
def _dact(kind, h):
    """``sigma'(a)`` from ``h = sigma(a)`` (all four derivatives need only h)."""
    if kind == RELU:
        return 1.0 if h > 0.0 else 0.0
    if kind == TANH:
        return 1.0 - h * h
    if kind == LOGISTIC_ACT:
        return h * (1.0 - h)
    return 1.0


@_inline
def _forward(w, X, sizes, activation, dropout, batch_norm, offs):
    """Training-mode forward pass (batch statistics; dropout if ``dropout > 0``).

    Returns ``O`` and what the backward passes need, per hidden layer ``l``:
    ``Hin[l]`` (the layer's input; ``Hin[0] = X``, ``Hin[L]`` the output
    layer's), ``Hact[l]`` (``sigma(A_l)`` before dropout), ``Zhat[l]`` and
    ``S[l]`` (normalised scores and batch standard deviations, shape
    ``(1, b)``), ``M[l]`` (dropout multipliers).
    """
    nl = len(sizes) - 1
    n = X.shape[0]
    empty = np.empty((0, 0))
    Hin = [X]
    Hact = [empty]
    Zh = [empty]
    Sd = [empty]
    Ms = [empty]
    H = X
    keep = 1.0 - dropout
    for l in range(nl - 1):
        b = sizes[l + 1]
        A = np.dot(H, _weights(w, sizes, offs, l))
        bo = offs[l, 1]
        if batch_norm:
            go = offs[l, 2]
            S = np.empty((1, b))
            Zhat = np.empty_like(A)
            inv_n = 1.0 / n
            for j in range(b):
                mu = 0.0
                for i in range(n):
                    mu += A[i, j]
                mu *= inv_n
                var = 0.0
                for i in range(n):
                    d = A[i, j] - mu
                    var += d * d
                sd = math.sqrt(var * inv_n + BN_EPS)
                S[0, j] = sd
                for i in range(n):
                    zh = (A[i, j] - mu) / sd
                    Zhat[i, j] = zh
                    A[i, j] = w[go + j] * zh + w[bo + j]
            Zh.append(Zhat)
            Sd.append(S)
        else:
            for i in range(n):
                for j in range(b):
                    A[i, j] += w[bo + j]
            Zh.append(empty)
            Sd.append(empty)
        Hp = _activate(activation, A)
        Hact.append(Hp)
        if dropout > 0.0:
            M = np.empty_like(Hp)
            Hn = np.empty_like(Hp)
            for i in range(n):
                for j in range(b):
                    # numba's own generator (a Generator object cannot be
                    # passed through the solvers' args without being sliced)
                    m = 1.0 / keep if np.random.random() < keep else 0.0  # noqa: NPY002
                    M[i, j] = m
                    Hn[i, j] = Hp[i, j] * m
            Ms.append(M)
            H = Hn
        else:
            Ms.append(empty)
            H = Hp
        Hin.append(H)
    last = nl - 1
    O = np.dot(H, _weights(w, sizes, offs, last))
    bo = offs[last, 1]
    for i in range(n):
        for k in range(O.shape[1]):
            O[i, k] += w[bo + k]
    return O, Hin, Hact, Zh, Sd, Ms


@_inline
def _ravel_into(out, o, A):
    """``out[o : o + A.size] = A.ravel()`` for a C-ordered ``A``.

    A loop: numba's slice assignment compiles its shape-mismatch message
    (string formatting, about 1.5 s in every process that compiles a kernel).
    """
    flat = A.ravel()
    for j in range(flat.shape[0]):
        out[o + j] = flat[j]


@_inline
def _colsum_into(out, o, D):
    for j in range(D.shape[1]):
        acc = 0.0
        for i in range(D.shape[0]):
            acc += D[i, j]
        out[o + j] = acc


@_inline
def _backward(w, g, dO, Hin, Hact, Zh, Sd, Ms, sizes, activation, dropout, batch_norm, offs):
    """``g <- J^T dO`` (no penalty): back-propagate output derivatives ``dO``."""
    nl = len(sizes) - 1
    last = nl - 1
    GW = np.dot(Hin[last].T, dO)
    o = offs[last, 0]
    _ravel_into(g, o, GW)
    _colsum_into(g, offs[last, 1], dO)
    dH = np.dot(dO, _weights(w, sizes, offs, last).T)
    for l in range(nl - 2, -1, -1):
        n, b = dH.shape
        Hp = Hact[l + 1]
        dA = dH
        for i in range(n):
            for j in range(b):
                d = dA[i, j] * _dact(activation, Hp[i, j])
                if dropout > 0.0:
                    d *= Ms[l + 1][i, j]
                dA[i, j] = d
        if batch_norm:
            Zhat = Zh[l + 1]
            S = Sd[l + 1]
            go = offs[l, 2]
            bo = offs[l, 1]
            inv_n = 1.0 / n
            for j in range(b):
                sg = 0.0
                sb = 0.0
                for i in range(n):
                    sg += dA[i, j] * Zhat[i, j]
                    sb += dA[i, j]
                g[go + j] = sg
                g[bo + j] = sb
                gam = w[go + j]
                # dZ = (dZhat - mean(dZhat) - Zhat mean(dZhat Zhat)) / S with
                # dZhat = gamma dA, so the two means are gamma sb/n, gamma sg/n
                m1 = gam * sb * inv_n
                m2 = gam * sg * inv_n
                for i in range(n):
                    dA[i, j] = (gam * dA[i, j] - m1 - Zhat[i, j] * m2) / S[0, j]
        else:
            _colsum_into(g, offs[l, 1], dA)
        GW = np.dot(Hin[l].T, dA)
        o = offs[l, 0]
        _ravel_into(g, o, GW)
        if l > 0:
            dH = np.dot(dA, _weights(w, sizes, offs, l).T)


@_inline
def _penalty(w, g, sizes, offs, lam, scale_w):
    """Add ``lam * W`` to ``g`` for every weight matrix; returns ``lam/2 sum W^2``.

    ``scale_w`` is the vector whose weights enter ``g`` (``w`` for the
    gradient, ``v`` for a curvature product).
    """
    acc = 0.0
    for l in range(len(sizes) - 1):
        o = offs[l, 0]
        for j in range(o, o + sizes[l] * sizes[l + 1]):
            acc += w[j] * w[j]
            g[j] += lam * scale_w[j]
    return 0.5 * lam * acc


@_kernel
def mlp_fg(w, X, Y, sizes, activation, loss, lam, dropout, batch_norm):
    """Mean loss and gradient (training mode: dropout and batch statistics)."""
    offs = _offsets(sizes, batch_norm)
    O, Hin, Hact, Zh, Sd, Ms = _forward(w, X, sizes, activation, dropout, batch_norm, offs)
    n, K = O.shape
    f = 0.0
    for i in range(n):
        f += _row_loss(loss, O, Y, i, K)
    inv = 1.0 / max(n, 1)
    for i in range(n):
        for k in range(K):
            O[i, k] *= inv
    g = np.empty(w.shape[0])
    _backward(w, g, O, Hin, Hact, Zh, Sd, Ms, sizes, activation, dropout, batch_norm, offs)
    return f * inv + _penalty(w, g, sizes, offs, lam, w), g


@_kernel
def mlp_loss(w, X, Y, sizes, activation, loss, lam, dropout, batch_norm):
    """The value of :func:`mlp_fg` alone (a forward pass)."""
    offs = _offsets(sizes, batch_norm)
    O = _forward(w, X, sizes, activation, dropout, batch_norm, offs)[0]
    n, K = O.shape
    f = 0.0
    for i in range(n):
        f += _row_loss(loss, O, Y, i, K)
    pen = 0.0
    for l in range(len(sizes) - 1):
        o = offs[l, 0]
        for j in range(o, o + sizes[l] * sizes[l + 1]):
            pen += w[j] * w[j]
    return f / max(n, 1) + 0.5 * lam * pen


@_inline
def _output_hessian(loss, O, U):
    """``U[i] <- H_i U[i]``, ``H_i`` the output loss's Hessian at ``O[i]``."""
    n, K = O.shape
    for i in range(n):
        if loss == SOFTMAX:
            m = O[i, 0]
            for k in range(1, K):
                if O[i, k] > m:
                    m = O[i, k]
            tot = 0.0
            P = np.empty(K)
            for k in range(K):
                P[k] = math.exp(O[i, k] - m)
                tot += P[k]
            pu = 0.0
            for k in range(K):
                P[k] /= tot
                pu += P[k] * U[i, k]
            for k in range(K):
                U[i, k] = P[k] * (U[i, k] - pu)
        elif loss == LOGISTIC:
            for k in range(K):
                s = _sigmoid(O[i, k])
                U[i, k] *= s * (1.0 - s)


@_inline
def _output_hessian_diag(loss, O):
    """Diagonal of each row's output Hessian, shape of ``O``."""
    n, K = O.shape
    D = np.ones_like(O)
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
            for k in range(K):
                pk = D[i, k] / tot
                D[i, k] = pk * (1.0 - pk)
        elif loss == LOGISTIC:
            for k in range(K):
                s = _sigmoid(O[i, k])
                D[i, k] = s * (1.0 - s)
    return D


@_kernel
def mlp_gn(w, v, X, Y, sizes, activation, loss, lam, dropout, batch_norm):
    r"""Exact Gauss-Newton product :math:`(J^T H J / n + \lambda P) v`.

    :math:`J` is the Jacobian of the outputs of the network *without dropout*
    (batch statistics through batch normalisation included), :math:`H` the
    block-diagonal Hessian of the output loss and :math:`P` the mask of the
    penalised weights.  :math:`Jv` by a forward-mode pass (Pearlmutter's
    R-operator), :math:`J^T u` by back-propagation (Schraudolph 2002).
    """
    offs = _offsets(sizes, batch_norm)
    O, Hin, Hact, Zh, Sd, Ms = _forward(w, X, sizes, activation, 0.0, batch_norm, offs)
    nl = len(sizes) - 1
    n = X.shape[0]
    # forward mode: dH = d(H_{l+1}) along v
    dH = np.empty((0, 0))
    for l in range(nl - 1):
        b = sizes[l + 1]
        dA = np.dot(Hin[l], _weights(v, sizes, offs, l))
        if l > 0:
            dA += np.dot(dH, _weights(w, sizes, offs, l))
        bo = offs[l, 1]
        if batch_norm:
            go = offs[l, 2]
            Zhat = Zh[l + 1]
            S = Sd[l + 1]
            for j in range(b):
                dmu = 0.0
                ds = 0.0
                for i in range(n):
                    dmu += dA[i, j]
                    ds += Zhat[i, j] * dA[i, j]
                dmu /= n
                ds /= n
                for i in range(n):
                    dzh = (dA[i, j] - dmu - Zhat[i, j] * ds) / S[0, j]
                    dA[i, j] = v[go + j] * Zhat[i, j] + w[go + j] * dzh + v[bo + j]
        else:
            for i in range(n):
                for j in range(b):
                    dA[i, j] += v[bo + j]
        Hp = Hact[l + 1]
        for i in range(n):
            for j in range(b):
                dA[i, j] *= _dact(activation, Hp[i, j])
        dH = dA
    last = nl - 1
    dO = np.dot(Hin[last], _weights(v, sizes, offs, last))
    if last > 0:
        dO += np.dot(dH, _weights(w, sizes, offs, last))
    bo = offs[last, 1]
    K = dO.shape[1]
    for i in range(n):
        for k in range(K):
            dO[i, k] += v[bo + k]
    _output_hessian(loss, O, dO)
    inv = 1.0 / max(n, 1)
    for i in range(n):
        for k in range(K):
            dO[i, k] *= inv
    out = np.empty(w.shape[0])
    _backward(w, out, dO, Hin, Hact, Zh, Sd, Ms, sizes, activation, 0.0, batch_norm, offs)
    _penalty(w, out, sizes, offs, lam, v)
    return out


@_kernel
def mlp_gn_diag(w, X, Y, sizes, activation, loss, lam, dropout, batch_norm):
    r"""Becker & LeCun's (1988) diagonal of the Gauss-Newton matrix: one extra backward pass.

    The output loss's Hessian diagonal is propagated back with squared
    weights and squared activation derivatives, dropping the off-diagonal
    terms (between outputs, hidden units and, through batch normalisation,
    samples).  Exact for the output layer, and for every layer of a network
    with one output and at most one hidden layer without batch
    normalisation; an approximation elsewhere.
    """
    offs = _offsets(sizes, batch_norm)
    O, Hin, Hact, Zh, Sd, Ms = _forward(w, X, sizes, activation, 0.0, batch_norm, offs)
    nl = len(sizes) - 1
    n = X.shape[0]
    D = _output_hessian_diag(loss, O)
    inv = 1.0 / max(n, 1)
    for i in range(n):
        for k in range(D.shape[1]):
            D[i, k] *= inv
    out = np.empty(w.shape[0])
    last = nl - 1
    for l in range(last, -1, -1):
        if l < last:
            b = sizes[l + 1]
            W2 = _weights(w, sizes, offs, l + 1) ** 2
            D = np.dot(D, W2.T)
            Hp = Hact[l + 1]
            for i in range(n):
                for j in range(b):
                    d = _dact(activation, Hp[i, j])
                    D[i, j] *= d * d
            if batch_norm:
                go = offs[l, 2]
                bo = offs[l, 1]
                Zhat = Zh[l + 1]
                S = Sd[l + 1]
                for j in range(b):
                    sg = 0.0
                    sb = 0.0
                    for i in range(n):
                        sg += D[i, j] * Zhat[i, j] * Zhat[i, j]
                        sb += D[i, j]
                    out[go + j] = sg
                    out[bo + j] = sb
                    c = w[go + j] / S[0, j]
                    for i in range(n):
                        D[i, j] *= c * c
            else:
                _colsum_into(out, offs[l, 1], D)
        else:
            _colsum_into(out, offs[l, 1], D)
        H2 = Hin[l] ** 2
        DW = np.dot(H2.T, D)
        o = offs[l, 0]
        _ravel_into(out, o, DW)
    for l in range(nl):
        o = offs[l, 0]
        for j in range(o, o + sizes[l] * sizes[l + 1]):
            out[j] += lam
    return out


def mlp_batch_stats(w, X, sizes, activation, batch_norm):
    """Population statistics of every batch-normalised layer over ``X``.

    A forward pass without dropout with the statistics of all of ``X`` (the
    full-batch training-mode network); returns ``(mean, var)``, each
    ``(L, max width)`` with row ``l`` the statistics of hidden layer ``l``
    (zeros and ones without batch normalisation: then nothing compiles).
    """
    nl = len(sizes) - 1
    width = max([1, *sizes[1:nl]])
    means = np.zeros((max(nl - 1, 1), width))
    vars_ = np.ones((max(nl - 1, 1), width))
    if batch_norm:
        _batch_stats_into(w, X, sizes, activation, batch_norm, means, vars_)
    return means, vars_


@_kernel
def _batch_stats_into(w, X, sizes, activation, batch_norm, means, vars_):
    """Fill rows ``l`` of ``means``, ``vars_`` with the statistics of :func:`mlp_batch_stats`."""
    offs = _offsets(sizes, batch_norm)
    nl = len(sizes) - 1
    _, Hin, Hact, Zh, Sd, Ms = _forward(w, X, sizes, activation, 0.0, batch_norm, offs)
    for l in range(nl - 1):
        Z = np.dot(Hin[l], _weights(w, sizes, offs, l))
        n = Z.shape[0]
        for j in range(Z.shape[1]):
            mu = 0.0
            for i in range(n):
                mu += Z[i, j]
            mu /= n
            var = 0.0
            for i in range(n):
                var += (Z[i, j] - mu) ** 2
            means[l, j] = mu
            vars_[l, j] = var / n


@_kernel
def mlp_predict(w, X, sizes, activation, batch_norm, means, vars_):
    """Inference-mode outputs ``O`` (before the output activation).

    No dropout; batch normalisation with the stored statistics ``means``,
    ``vars_`` (from :func:`mlp_batch_stats`), so every row's output depends
    on that row only.
    """
    offs = _offsets(sizes, batch_norm)
    nl = len(sizes) - 1
    H = X
    for l in range(nl):
        b = sizes[l + 1]
        A = np.dot(H, _weights(w, sizes, offs, l))
        bo = offs[l, 1]
        n = A.shape[0]
        if l < nl - 1 and batch_norm:
            go = offs[l, 2]
            for j in range(b):
                sd = math.sqrt(vars_[l, j] + BN_EPS)
                for i in range(n):
                    A[i, j] = w[go + j] * (A[i, j] - means[l, j]) / sd + w[bo + j]
        else:
            for i in range(n):
                for j in range(b):
                    A[i, j] += w[bo + j]
        if l < nl - 1:
            H = _activate(activation, A)
        else:
            H = A
    return H


@_kernel
def seed(s):
    """Seed numba's generator (the dropout masks) in this thread."""
    np.random.seed(s)  # noqa: NPY002 - seeds numba's generator, not NumPy's


__all__ = [
    "ACTIVATIONS",
    "LOGISTIC",
    "SOFTMAX",
    "SQUARED",
    "mlp_batch_stats",
    "mlp_fg",
    "mlp_gn",
    "mlp_gn_diag",
    "mlp_loss",
    "mlp_predict",
    "n_params",
    "seed",
]
