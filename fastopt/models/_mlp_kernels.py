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
(``np.dot`` inside ``@njit``, written into preallocated arrays); the
element-wise work is in loops.

Compile time (the first ``MLPClassifier.fit`` of a process compiles its
``fg`` kernel): a forward pass keeps what the backward passes need in one
flat workspace (:func:`_workspace`), each layer's blocks at offsets, and the
products write into it (``np.dot(a, b, out)``: one compiled product per
layout); the passes are compiled once as functions the kernels call
(:func:`_called`), not inlined into each; a fit compiles the code of its
case only (:func:`fg_kernel`).  With lists of arrays, inlined passes and
every case in it, :func:`mlp_fg` took about 4.7 s to compile.

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


_CALLED = {"error_model": "numpy"}


def _called(fn):
    """A helper the kernels call, compiled once, not inlined into each of them.

    numba's ``inline="always"`` copies the callee's IR at each call site,
    scope and all, at a cost that grows with the callee's size times its
    number of blocks: inlining the passes cost about 1.5 s of compiling
    :func:`mlp_fg`.
    """
    return numba.njit(**_CALLED)(fn)


#: compile-time switches of :func:`_forward` and :func:`_backward`: ``ANY``
#: reads the ``batch_norm``/``dropout`` arguments at run time; ``OFF`` leaves
#: that code out (numba prunes a test of two global constants before it
#: compiles).  Rebound per kernel by :func:`fg_kernel`; module-wide ``ANY``.
ANY, OFF = -1, 0
WITH_BN = ANY
WITH_DROPOUT = ANY


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


#: columns of the workspace offsets (:func:`_workspace`), per layer ``l``:
#: ``sigma(A_l)`` before dropout (the output layer: its scores ``O``), the
#: next layer's input (after dropout), the dropout multipliers, the
#: normalised scores and the batch standard deviations
_HACT, _HIN, _MASK, _ZHAT, _SD = 0, 1, 2, 3, 4


@_inline
def _workspace(sizes, n, batch_norm, dropout):
    """``(wo, size)``: offsets of each layer's blocks in a flat workspace of ``size``.

    Row ``l`` of ``wo`` holds the offsets of layer ``l``'s blocks (columns
    ``_HACT`` .. ``_SD``, each ``(n, sizes[l + 1])`` but the standard
    deviations, ``sizes[l + 1]``), -1 for a block the network has not.
    Without dropout a layer's input is its ``sigma(A_l)`` (same offset).
    """
    nl = len(sizes) - 1
    wo = np.empty((nl, 5), dtype=np.int64)
    off = 0
    for l in range(nl):
        b = sizes[l + 1]
        for c in range(5):
            wo[l, c] = -1
        wo[l, _HACT] = off
        off += n * b
        if l < nl - 1:
            if dropout > 0.0:
                wo[l, _MASK] = off
                off += n * b
                wo[l, _HIN] = off
                off += n * b
            else:
                wo[l, _HIN] = wo[l, _HACT]
            if batch_norm:
                wo[l, _ZHAT] = off
                off += n * b
                wo[l, _SD] = off
                off += b
    return wo, off


@_called
def _view(a, o, n, b):
    """``a[o : o + n * b]`` as an ``(n, b)`` array (a view).

    Called, not inlined: numba lowers every ``reshape`` call site with its
    own shape checks (about 30 ms of compiling each), and the kernels take
    a dozen views.
    """
    return a[o : o + n * b].reshape((n, b))


@_inline
def _block(ws, wo, l, col, n, b):
    """Layer ``l``'s block ``col`` of the workspace as an ``(n, b)`` array (a view)."""
    return _view(ws, wo[l, col], n, b)


@_inline
def _batch_sd(ws, wo, l, b):
    """Layer ``l``'s batch standard deviations (``b`` of them, a view)."""
    o = wo[l, _SD]
    return ws[o : o + b]


@_inline
def _layer_input(X, ws, wo, l, sizes):
    """:math:`H_l`, the input of layer ``l``: ``X``, or the previous layer's output."""
    if l == 0:
        return X
    return _block(ws, wo, l - 1, _HIN, X.shape[0], sizes[l])


@_inline
def _weights(w, sizes, offs, l):
    return _view(w, offs[l, 0], sizes[l], sizes[l + 1])


@_inline
def _activate(kind, A):
    """``A <- sigma(A)`` in place."""
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            a = A[i, j]
            if kind == RELU:
                A[i, j] = a if a > 0.0 else 0.0
            elif kind == TANH:
                A[i, j] = math.tanh(a)
            elif kind == LOGISTIC_ACT:
                A[i, j] = _sigmoid(a)
            # (identity: A is sigma(A))


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


@_called
def _forward(w, X, sizes, activation, dropout, batch_norm, offs):
    r"""Training-mode forward pass (batch statistics; dropout if ``dropout > 0``).

    Returns ``(O, ws, wo)``: the output scores and the workspace with its
    offsets (:func:`_workspace`), which hold what the backward passes need,
    per hidden layer ``l``: :math:`\sigma(A_l)` before dropout
    (:func:`_block` ``_HACT``), the next layer's input (``_HIN``;
    :func:`_layer_input`), the dropout multipliers (``_MASK``), the
    normalised scores (``_ZHAT``) and batch standard deviations (``_SD``, a
    row).  ``O`` is the output layer's ``_HACT`` block.
    """
    nl = len(sizes) - 1
    n = X.shape[0]
    wo, size = _workspace(sizes, n, batch_norm, dropout)
    ws = np.empty(size)
    keep = 1.0 - dropout
    for l in range(nl - 1):
        b = sizes[l + 1]
        A = _block(ws, wo, l, _HACT, n, b)
        np.dot(_layer_input(X, ws, wo, l, sizes), _weights(w, sizes, offs, l), A)
        bo = offs[l, 1]
        if WITH_BN != OFF and batch_norm:
            go = offs[l, 2]
            Zhat = _block(ws, wo, l, _ZHAT, n, b)
            so = wo[l, _SD]
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
                ws[so + j] = sd
                for i in range(n):
                    zh = (A[i, j] - mu) / sd
                    Zhat[i, j] = zh
                    A[i, j] = w[go + j] * zh + w[bo + j]
        else:
            for i in range(n):
                for j in range(b):
                    A[i, j] += w[bo + j]
        _activate(activation, A)
        if WITH_DROPOUT != OFF and dropout > 0.0:
            M = _block(ws, wo, l, _MASK, n, b)
            Hn = _block(ws, wo, l, _HIN, n, b)
            for i in range(n):
                for j in range(b):
                    # numba's own generator (a Generator object cannot be
                    # passed through the solvers' args without being sliced)
                    m = 1.0 / keep if np.random.random() < keep else 0.0  # noqa: NPY002
                    M[i, j] = m
                    Hn[i, j] = A[i, j] * m
    last = nl - 1
    O = _block(ws, wo, last, _HACT, n, sizes[nl])
    np.dot(_layer_input(X, ws, wo, last, sizes), _weights(w, sizes, offs, last), O)
    bo = offs[last, 1]
    for i in range(n):
        for k in range(O.shape[1]):
            O[i, k] += w[bo + k]
    return O, ws, wo


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


@_called
def _backward(w, g, dO, X, ws, wo, sizes, activation, dropout, batch_norm, offs):
    """``g <- J^T dO`` (no penalty): back-propagate output derivatives ``dO``.

    ``ws, wo`` are the workspace of the :func:`_forward` pass on ``X``;
    each weight gradient is written straight into its place in ``g``.
    """
    nl = len(sizes) - 1
    last = nl - 1
    n = dO.shape[0]
    np.dot(_layer_input(X, ws, wo, last, sizes).T, dO, _weights(g, sizes, offs, last))
    _colsum_into(g, offs[last, 1], dO)
    dH = np.empty((n, sizes[last]))
    if last > 0:
        np.dot(dO, _weights(w, sizes, offs, last).T, dH)
    for l in range(nl - 2, -1, -1):
        b = sizes[l + 1]
        Hp = _block(ws, wo, l, _HACT, n, b)
        M = Hp  # (read only with dropout)
        if WITH_DROPOUT != OFF and dropout > 0.0:
            M = _block(ws, wo, l, _MASK, n, b)
        dA = dH
        for i in range(n):
            for j in range(b):
                d = dA[i, j] * _dact(activation, Hp[i, j])
                if WITH_DROPOUT != OFF and dropout > 0.0:
                    d *= M[i, j]
                dA[i, j] = d
        if WITH_BN != OFF and batch_norm:
            Zhat = _block(ws, wo, l, _ZHAT, n, b)
            so = wo[l, _SD]
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
                    dA[i, j] = (gam * dA[i, j] - m1 - Zhat[i, j] * m2) / ws[so + j]
        else:
            _colsum_into(g, offs[l, 1], dA)
        np.dot(_layer_input(X, ws, wo, l, sizes).T, dA, _weights(g, sizes, offs, l))
        if l > 0:
            dH = np.empty((n, sizes[l]))
            np.dot(dA, _weights(w, sizes, offs, l).T, dH)


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
    O, ws, wo = _forward(w, X, sizes, activation, dropout, batch_norm, offs)
    n, K = O.shape
    f = 0.0
    for i in range(n):
        f += _row_loss(loss, O, Y, i, K)
    inv = 1.0 / max(n, 1)
    for i in range(n):
        for k in range(K):
            O[i, k] *= inv
    g = np.empty(w.shape[0])
    _backward(w, g, O, X, ws, wo, sizes, activation, dropout, batch_norm, offs)
    return f * inv + _penalty(w, g, sizes, offs, lam, w), g


#: (batch norm, dropout) -> the :func:`mlp_fg` kernel of such networks
_FG_KERNELS = {}


def fg_kernel(batch_norm, dropout):
    """The :func:`mlp_fg` kernel a fit with(out) batch normalisation and dropout compiles.

    Networks without batch normalisation (or dropout) get :func:`mlp_fg`
    compiled with that code left out (``WITH_BN``/``WITH_DROPOUT`` bound to
    ``OFF``, see :func:`fastopt._jit.specialised`): the same values bit for
    bit, for about a third less compiling than :func:`mlp_fg` with every
    case in it.  The kernel still takes ``batch_norm`` and ``dropout``: it
    must get the ``batch_norm`` it was built for, and ``dropout = 0`` when
    built without dropout (the code it would need is not in it); built with
    dropout it also computes the loss without (``dropout = 0``), as a fit
    does.  Built on first use, cached under its own name.
    """
    key = (bool(batch_norm), dropout > 0.0)
    if key == (True, True):
        return mlp_fg
    if key not in _FG_KERNELS:
        consts = {"WITH_BN": ANY if key[0] else OFF, "WITH_DROPOUT": ANY if key[1] else OFF}
        suffix = ("bn" if key[0] else "nobn") + ("_dropout" if key[1] else "")
        fwd = _jit.specialised(_forward.py_func, suffix, _CALLED, **consts)
        bwd = _jit.specialised(_backward.py_func, suffix, _CALLED, **consts)
        _FG_KERNELS[key] = _jit.specialised(mlp_fg.py_func, suffix, _KERNEL,
                                            _forward=fwd, _backward=bwd, **consts)  # fmt: skip
    return _FG_KERNELS[key]


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
    O, ws, wo = _forward(w, X, sizes, activation, 0.0, batch_norm, offs)
    nl = len(sizes) - 1
    n = X.shape[0]
    # forward mode: dH = d(H_{l+1}) along v
    dH = np.empty((0, 0))
    for l in range(nl - 1):
        b = sizes[l + 1]
        dA = np.dot(_layer_input(X, ws, wo, l, sizes), _weights(v, sizes, offs, l))
        if l > 0:
            dA += np.dot(dH, _weights(w, sizes, offs, l))
        bo = offs[l, 1]
        if batch_norm:
            go = offs[l, 2]
            Zhat = _block(ws, wo, l, _ZHAT, n, b)
            S = _batch_sd(ws, wo, l, b)
            for j in range(b):
                dmu = 0.0
                ds = 0.0
                for i in range(n):
                    dmu += dA[i, j]
                    ds += Zhat[i, j] * dA[i, j]
                dmu /= n
                ds /= n
                for i in range(n):
                    dzh = (dA[i, j] - dmu - Zhat[i, j] * ds) / S[j]
                    dA[i, j] = v[go + j] * Zhat[i, j] + w[go + j] * dzh + v[bo + j]
        else:
            for i in range(n):
                for j in range(b):
                    dA[i, j] += v[bo + j]
        Hp = _block(ws, wo, l, _HACT, n, b)
        for i in range(n):
            for j in range(b):
                dA[i, j] *= _dact(activation, Hp[i, j])
        dH = dA
    last = nl - 1
    dO = np.dot(_layer_input(X, ws, wo, last, sizes), _weights(v, sizes, offs, last))
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
    _backward(w, out, dO, X, ws, wo, sizes, activation, 0.0, batch_norm, offs)
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
    O, ws, wo = _forward(w, X, sizes, activation, 0.0, batch_norm, offs)
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
            Hp = _block(ws, wo, l, _HACT, n, b)
            for i in range(n):
                for j in range(b):
                    d = _dact(activation, Hp[i, j])
                    D[i, j] *= d * d
            if batch_norm:
                go = offs[l, 2]
                bo = offs[l, 1]
                Zhat = _block(ws, wo, l, _ZHAT, n, b)
                S = _batch_sd(ws, wo, l, b)
                for j in range(b):
                    sg = 0.0
                    sb = 0.0
                    for i in range(n):
                        sg += D[i, j] * Zhat[i, j] * Zhat[i, j]
                        sb += D[i, j]
                    out[go + j] = sg
                    out[bo + j] = sb
                    c = w[go + j] / S[j]
                    for i in range(n):
                        D[i, j] *= c * c
            else:
                _colsum_into(out, offs[l, 1], D)
        else:
            _colsum_into(out, offs[l, 1], D)
        H2 = _layer_input(X, ws, wo, l, sizes) ** 2
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
    _, ws, wo = _forward(w, X, sizes, activation, 0.0, batch_norm, offs)
    for l in range(nl - 1):
        Z = np.dot(_layer_input(X, ws, wo, l, sizes), _weights(w, sizes, offs, l))
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
        n = H.shape[0]
        # into a new array with np.dot's out: the product the fit compiled
        A = np.empty((n, b))
        np.dot(H, _weights(w, sizes, offs, l), A)
        bo = offs[l, 1]
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
            _activate(activation, A)
        H = A
    return H


@_kernel
def seed(s):
    """Seed numba's generator (the dropout masks) in this thread."""
    np.random.seed(s)  # noqa: NPY002 - seeds numba's generator, not NumPy's


__all__ = [
    "ACTIVATIONS",
    "fg_kernel",
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
