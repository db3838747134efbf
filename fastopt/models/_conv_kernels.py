r"""Loss and gradient kernels of the convolutional classifier.

The network: convolution blocks, then a dense head,

.. math::

    Z_l = \mathrm{relu}(\mathrm{conv}(A_l, K_l) + c_l), \qquad
    A_{l+1} = \mathrm{maxpool}_{p_l}(Z_l), \qquad
    H_0 = \mathrm{drop}(\mathrm{flatten}(A_L)), \qquad
    H_{m+1} = \mathrm{drop}(\mathrm{relu}(H_m W_m + b_m)), \qquad
    O = H_M W_M + b_M,

with :math:`A_0` the input.  ``conv`` is a stride-1 cross-correlation (what
torch's ``conv1d``/``conv2d`` compute) with zero padding, ``maxpool`` takes
the maximum of disjoint :math:`p \times p` windows (``1 x p`` in one
dimension; a remainder that does not fill a window is dropped, as torch's
``max_pool`` does) and dropout is inverted (kept units scaled by
:math:`1/(1-p)`), in training only.  The objective is the mean output loss
(softmax cross-entropy, or the logistic loss of one output unit) plus
:math:`\frac{\lambda}{2}` times the squared norm of every filter bank and
weight matrix (not of the biases).

Layout.  Activations are channels-last rows: sample ``s`` of a layer with
height ``H``, width ``W`` and ``C`` channels is row ``s`` of an
``(n, H*W*C)`` array, entry ``(y*W + x)*C + c``; a 1-D signal has ``H = 1``.
A convolution is one BLAS product: the im2col matrix (a row per output
position, ``kh*kw*C`` columns ordered ``(a, b, c)``) times the filter bank,
stored row-major as ``(kh*kw*C, F)``, so that torch's weight ``(F, C, kh,
kw)`` is ``K.reshape(kh, kw, C, F).transpose(3, 2, 0, 1)``.  The flat
parameter vector is, layer after layer, ``K_l, c_l`` then ``W_m, b_m``.

Kernels take ``args = (X, Y, geom, dense, loss, lam, dropout)``: ``geom`` a
tuple with one tuple of :data:`N_GEOM` ints per convolution layer (see
:func:`conv_geometry`), ``dense`` the widths of the dense layers from the
flattened features to the outputs.  Both are tuples, not arrays (the
minibatch drivers slice every array in ``args``).  Dropout draws from numba's
generator, seeded by :func:`fastopt.models._mlp_kernels.seed`.
"""

import numpy as np

from .._jit import inline, kernel
from ._linear_kernels import _row_loss

#: ints per convolution layer in ``geom``:
#: ``(H, W, C, F, kh, kw, pad_h, pad_w, Ho, Wo, pool_h, pool_w, Hp, Wp)``
N_GEOM = 14


def conv_geometry(input_hw, channels, layers, padding):
    """The ``geom`` tuple of a stack of convolution layers.

    Parameters
    ----------
    input_hw : (int, int)
        Height and width of the input (``(1, L)`` for a 1-D signal).
    channels : int
    layers : sequence of (filters, kh, kw, pool_h, pool_w)
    padding : {"same", "valid"}
        "same" pads ``k // 2`` on both sides (odd kernels keep the size).

    Returns
    -------
    geom : tuple of tuples of int
    flat : int
        Width of the flattened output.

    Raises
    ------
    ValueError
        If a layer's output would be empty.
    """
    H, W = input_hw
    C = channels
    geom = []
    for li, (F, kh, kw, qh, qw) in enumerate(layers):
        ph, pw = (kh // 2, kw // 2) if padding == "same" else (0, 0)
        Ho, Wo = H + 2 * ph - kh + 1, W + 2 * pw - kw + 1
        Hp, Wp = Ho // qh, Wo // qw
        if Ho < 1 or Wo < 1 or Hp < 1 or Wp < 1:
            raise ValueError(
                f"convolution layer {li} has an empty output: input {H}x{W}, kernel {kh}x{kw}, "
                f"padding {padding!r}, pooling {qh}x{qw}; use smaller kernels or pooling, "
                "padding='same', or a larger input_shape"
            )
        geom.append((H, W, C, F, kh, kw, ph, pw, Ho, Wo, qh, qw, Hp, Wp))
        H, W, C = Hp, Wp, F
    return tuple(geom), H * W * C


def n_params(geom, dense):
    """Length of the flat parameter vector."""
    total = 0
    for g in geom:
        total += g[4] * g[5] * g[2] * g[3] + g[3]
    for m in range(len(dense) - 1):
        total += dense[m] * dense[m + 1] + dense[m + 1]
    return total


@inline
def _offsets(geom, dense):
    """``offs[j] = (weight offset, bias offset)``: conv layers, then dense ones."""
    nc = len(geom)
    nd = len(dense) - 1
    offs = np.empty((nc + nd, 2), dtype=np.int64)
    off = 0
    for l in range(nc):
        g = geom[l]
        offs[l, 0] = off
        off += g[4] * g[5] * g[2] * g[3]
        offs[l, 1] = off
        off += g[3]
    for m in range(nd):
        offs[nc + m, 0] = off
        off += dense[m] * dense[m + 1]
        offs[nc + m, 1] = off
        off += dense[m + 1]
    return offs


@inline
def _im2col(A, g):
    """The im2col matrix of rows ``A`` (n, H*W*C): ``(n*Ho*Wo, kh*kw*C)``."""
    H, W, C = g[0], g[1], g[2]
    kh, kw, ph, pw, Ho, Wo = g[4], g[5], g[6], g[7], g[8], g[9]
    n = A.shape[0]
    cols = np.empty((n * Ho * Wo, kh * kw * C))
    for s in range(n):
        for i in range(Ho):
            for j in range(Wo):
                r = (s * Ho + i) * Wo + j
                for a in range(kh):
                    y = i + a - ph
                    for b in range(kw):
                        x = j + b - pw
                        c0 = (a * kw + b) * C
                        if 0 <= y < H and 0 <= x < W:
                            src = (y * W + x) * C
                            for c in range(C):
                                cols[r, c0 + c] = A[s, src + c]
                        else:
                            for c in range(C):
                                cols[r, c0 + c] = 0.0
    return cols


@inline
def _col2im(D, g, n):
    """The adjoint of :func:`_im2col`: scatter-add ``D`` into ``(n, H*W*C)``."""
    H, W, C = g[0], g[1], g[2]
    kh, kw, ph, pw, Ho, Wo = g[4], g[5], g[6], g[7], g[8], g[9]
    dA = np.zeros((n, H * W * C))
    for s in range(n):
        for i in range(Ho):
            for j in range(Wo):
                r = (s * Ho + i) * Wo + j
                for a in range(kh):
                    y = i + a - ph
                    if y < 0 or y >= H:
                        continue
                    for b in range(kw):
                        x = j + b - pw
                        if x < 0 or x >= W:
                            continue
                        c0 = (a * kw + b) * C
                        dst = (y * W + x) * C
                        for c in range(C):
                            dA[s, dst + c] += D[r, c0 + c]
    return dA


@inline
def _conv_relu(A, w, g, o_w, o_b):
    """``(cols, Z)``: the im2col matrix and ``relu(cols K + c)``, ``(n*Ho*Wo, F)``."""
    F = g[3]
    K = g[4] * g[5] * g[2]
    cols = _im2col(A, g)
    Z = np.dot(cols, w[o_w : o_w + K * F].reshape((K, F)))
    for r in range(Z.shape[0]):
        for f in range(F):
            z = Z[r, f] + w[o_b + f]
            Z[r, f] = z if z > 0.0 else 0.0
    return cols, Z


@inline
def _maxpool(Z, g, n):
    """``(P, idx)``: pooled rows ``(n, Hp*Wp*F)`` and the flat index in ``Z`` of each max."""
    F, Ho, Wo, qh, qw, Hp, Wp = g[3], g[8], g[9], g[10], g[11], g[12], g[13]
    P = np.empty((n, Hp * Wp * F))
    idx = np.empty((n, Hp * Wp * F), dtype=np.int64)
    for s in range(n):
        for i in range(Hp):
            for j in range(Wp):
                for f in range(F):
                    best = -np.inf
                    at = 0
                    for a in range(qh):
                        for b in range(qw):
                            r = (s * Ho + i * qh + a) * Wo + j * qw + b
                            v = Z[r, f]
                            if v > best:  # first maximum wins, as in torch
                                best = v
                                at = r * F + f
                    q = (i * Wp + j) * F + f
                    P[s, q] = best
                    idx[s, q] = at
    return P, idx


@inline
def _forward(w, X, geom, dense, dropout, offs):
    """Training-mode forward pass; returns ``O`` and the backward pass's inputs."""
    n = X.shape[0]
    nc = len(geom)
    nd = len(dense) - 1
    empty = np.empty((0, 0))
    Cols = [empty]
    Zs = [empty]
    Idx = [np.empty((0, 0), dtype=np.int64)]
    A = X
    for l in range(nc):
        g = geom[l]
        cols, Z = _conv_relu(A, w, g, offs[l, 0], offs[l, 1])
        Cols.append(cols)
        Zs.append(Z)
        if g[10] * g[11] > 1:
            A, idx = _maxpool(Z, g, n)
            Idx.append(idx)
        else:
            A = Z.reshape((n, Z.size // max(n, 1)))
            Idx.append(np.empty((0, 0), dtype=np.int64))
    keep = 1.0 - dropout
    Hin = [empty]
    Hact = [empty]
    Ms = [empty]
    H = A
    for m in range(nd):
        if m > 0:
            W = w[offs[nc + m - 1, 0] : offs[nc + m - 1, 0] + dense[m - 1] * dense[m]]
            Hp = np.dot(H, W.reshape((dense[m - 1], dense[m])))
            bo = offs[nc + m - 1, 1]
            for i in range(n):
                for j in range(dense[m]):
                    a = Hp[i, j] + w[bo + j]
                    Hp[i, j] = a if a > 0.0 else 0.0
        else:
            Hp = H
        Hact.append(Hp)
        if dropout > 0.0:
            M = np.empty_like(Hp)
            Hn = np.empty_like(Hp)
            for i in range(Hp.shape[0]):
                for j in range(Hp.shape[1]):
                    mk = 1.0 / keep if np.random.random() < keep else 0.0  # noqa: NPY002
                    M[i, j] = mk
                    Hn[i, j] = Hp[i, j] * mk
            Ms.append(M)
            H = Hn
        else:
            Ms.append(empty)
            H = Hp
        Hin.append(H)
    last = nc + nd - 1
    W = w[offs[last, 0] : offs[last, 0] + dense[nd - 1] * dense[nd]]
    O = np.dot(H, W.reshape((dense[nd - 1], dense[nd])))
    bo = offs[last, 1]
    for i in range(n):
        for k in range(O.shape[1]):
            O[i, k] += w[bo + k]
    return O, Cols, Zs, Idx, Hin, Hact, Ms


@inline
def _colsum_into(out, o, D):
    for j in range(D.shape[1]):
        acc = 0.0
        for i in range(D.shape[0]):
            acc += D[i, j]
        out[o + j] = acc


@inline
def _backward(w, g, dO, Cols, Zs, Idx, Hin, Hact, Ms, geom, dense, dropout, offs):
    """``g <- J^T dO`` (no penalty)."""
    nc = len(geom)
    nd = len(dense) - 1
    n = dO.shape[0]
    dH = dO
    for m in range(nd, 0, -1):
        j = nc + m - 1
        a, b = dense[m - 1], dense[m]
        H = Hin[m]
        GW = np.dot(H.T, dH)
        o = offs[j, 0]
        g[o : o + a * b] = GW.ravel()
        _colsum_into(g, offs[j, 1], dH)
        dH = np.dot(dH, w[o : o + a * b].reshape((a, b)).T)
        # through dropout, then (hidden layers) the ReLU
        Hp = Hact[m]
        for i in range(n):
            for k in range(a):
                d = dH[i, k]
                if dropout > 0.0:
                    d *= Ms[m][i, k]
                if m > 1 and Hp[i, k] <= 0.0:
                    d = 0.0
                dH[i, k] = d
    # dH: derivative with respect to the flattened features (after pooling)
    for l in range(nc - 1, -1, -1):
        gl = geom[l]
        F = gl[3]
        Kc = gl[4] * gl[5] * gl[2]
        Z = Zs[l + 1]
        if gl[10] * gl[11] > 1:
            dZ = np.zeros_like(Z)
            idx = Idx[l + 1]
            for s in range(n):
                for q in range(idx.shape[1]):
                    k = idx[s, q]
                    r = k // F
                    f = k - r * F
                    if Z[r, f] > 0.0:
                        dZ[r, f] += dH[s, q]
        else:
            dZ = dH.reshape(Z.shape).copy()
            for r in range(Z.shape[0]):
                for f in range(F):
                    if Z[r, f] <= 0.0:
                        dZ[r, f] = 0.0
        o = offs[l, 0]
        GK = np.dot(Cols[l + 1].T, dZ)
        g[o : o + Kc * F] = GK.ravel()
        _colsum_into(g, offs[l, 1], dZ)
        if l > 0:
            dcols = np.dot(dZ, w[o : o + Kc * F].reshape((Kc, F)).T)
            dH = _col2im(dcols, gl, n)


@inline
def _penalty(w, g, geom, dense, offs, lam):
    """Add ``lam * weights`` to ``g``; returns ``lam/2 * sum(weights^2)``."""
    acc = 0.0
    nc = len(geom)
    for l in range(nc + len(dense) - 1):
        o = offs[l, 0]
        for j in range(o, offs[l, 1]):
            acc += w[j] * w[j]
            g[j] += lam * w[j]
    return 0.5 * lam * acc


@kernel
def conv_fg(w, X, Y, geom, dense, loss, lam, dropout):
    """Mean loss and gradient (training mode: dropout if ``dropout > 0``)."""
    offs = _offsets(geom, dense)
    O, Cols, Zs, Idx, Hin, Hact, Ms = _forward(w, X, geom, dense, dropout, offs)
    n, K = O.shape
    f = 0.0
    for i in range(n):
        f += _row_loss(loss, O, Y, i, K)
    inv = 1.0 / max(n, 1)
    for i in range(n):
        for k in range(K):
            O[i, k] *= inv
    g = np.empty(w.shape[0])
    _backward(w, g, O, Cols, Zs, Idx, Hin, Hact, Ms, geom, dense, dropout, offs)
    return f * inv + _penalty(w, g, geom, dense, offs, lam), g


@kernel
def conv_outputs(w, X, geom, dense):
    """The network's outputs (no dropout), shape ``(n, dense[-1])``."""
    offs = _offsets(geom, dense)
    return _forward(w, X, geom, dense, 0.0, offs)[0]


__all__ = ["N_GEOM", "conv_fg", "conv_geometry", "conv_outputs", "n_params"]
