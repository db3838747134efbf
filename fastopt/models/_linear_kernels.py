r"""Loss, gradient and curvature kernels of the linear models, as cached ``@njit``.

One parameter layout and one argument tuple serve every linear model, so the
solvers' compiled loops, built on these functions, compile once for all of
them (and are cached to disk with them, see :func:`fastopt._jit.bound_loop`):

``w = [W.ravel(), b]`` with ``W`` of shape ``(p, K)`` (row-major) and the
intercepts ``b`` of length ``K`` (absent without an intercept), and

``args = (X, Y, lam, fit_intercept, s, penalize_b, loss)``:

``X`` (n, p) float64, ``Y`` (n, K) float64 targets (one-hot rows for the softmax,
:math:`\pm 1` for the squared hinge, 0/1 in column 0 for the binary logistic
loss), ``lam`` the L2 strength, ``s`` the intercept's feature value
(liblinear's ``intercept_scaling``; the intercept is ``s * b``),
``penalize_b`` whether ``b`` is in the penalty, and ``loss`` one of
:data:`SQUARED`, :data:`LOGISTIC`, :data:`SOFTMAX`, :data:`SQUARED_HINGE`.
The arrays ``X`` and ``Y`` are the only ones in ``args``: minibatching
(:mod:`fastopt._batching`) slices exactly those.

Every kernel computes the *mean* over the rows it is given plus the penalty,

.. math::

    f(w) = \frac1n \sum_{i=1}^n \ell(z_i, y_i)
           + \frac{\lambda}{2}\left(\|W\|_F^2 + [\text{penalize\_b}]\,\|b\|^2\right),
    \qquad z_i = W^T x_i + s\,b,

so a minibatch value is an unbiased estimate of the full one (``lam`` is
fixed by the caller from the full sample count).

Where the work is done (measured by ``benchmarks/models_compare.py``):

* one output (K = 1): a fused loop, one pass over ``X`` for the value and the
  gradient (and for a Gauss-Newton product), against two passes for
  :math:`Xw` then :math:`X^T r` with BLAS; at 1e5 x 100 the data do not fit in
  cache and the fused loop is about 2x faster than NumPy.  The row's dot
  product needs ``reassoc`` to vectorise (a float sum is not associative).
* several outputs: BLAS (``np.dot`` inside ``@njit``); a K-wide row loop
  does not beat a blocked matrix product.  For the softmax the two products
  take about 150 us of a 1797 x 64, 10-class evaluation (digits); the rest
  runs as flat loops that LLVM vectorises, with the exponential of
  :func:`_exp_nonpositive` (numba's ``math.exp`` is a scalar libm call: 55 us
  for the 18k exponentials of digits, against 6 us), which took one
  evaluation from 265 us to about 195 us (``benchmarks/models_compare.py``,
  section 1; NumPy: 330 us).
"""

import math

import numba
import numpy as np

from .. import _jit

#: loss identifiers (the ``loss`` argument)
SQUARED, LOGISTIC, SOFTMAX, SQUARED_HINGE = 0, 1, 2, 3

# The flags of style.md minus "afn" (approximate exp/log would change the
# loss values): "reassoc" lets LLVM vectorise the row dot products, and none
# of them touches NaN/inf semantics.
_FASTMATH = {"nsz", "arcp", "contract", "reassoc"}
_KERNEL = {"cache": _jit.CACHE, "error_model": "numpy", "nogil": True, "fastmath": _FASTMATH}
_INLINE = {"inline": "always", "error_model": "numpy", "fastmath": _FASTMATH}


def _kernel(fn):
    return numba.njit(**_KERNEL)(fn)


def _inline(fn):
    return numba.njit(**_INLINE)(fn)


def _exact_kernel(fn):
    """A cached kernel with ``fastmath`` off, said explicitly: for one that other kernels call.

    A kernel that calls another (not inlined) carries a copy of the callee,
    linked in under a weak symbol, and the process runs whichever copy it
    loaded first: the callee's own in a process that compiled the caller,
    the caller's in one that loaded the caller from numba's cache.  The two
    must compute the same bits, and did not: a callee that does not set
    ``fastmath`` is compiled inside a ``fastmath`` caller with the caller's
    flags (numba passes them down) under the same symbol name, and a callee
    with ``reassoc`` is optimised a second time in the caller's module,
    where LLVM may vectorise its sums in another order.  A fit's result then
    depended on the cache: ``LogisticRegression().fit`` on digits took 214
    iterations in a process that compiled its kernel and 226 in one that
    loaded it.  With ``fastmath=False`` set, every copy is IEEE arithmetic
    in the source's order; the kernels that use :func:`linear_fg`'s or
    :func:`linear_gn`'s math inline it rather than call them
    (``tests/test_coldstart.py`` checks both, and the fit, cold and warm).
    """
    return numba.njit(cache=_jit.CACHE, error_model="numpy", nogil=True, fastmath=False)(fn)


@_inline
def _sigmoid(z):
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@_inline
def _scalar_loss(loss, z, y):
    """``(l, dl/dz, d2l/dz2)`` of a one-output loss at ``z`` with target ``y``.

    Squared: :math:`\\tfrac12 (z - y)^2`; logistic, :math:`y \\in \\{0, 1\\}`:
    :math:`\\log(1 + e^z) - yz`; squared hinge, :math:`y = \\pm 1`:
    :math:`\\max(0, 1 - yz)^2` (its second derivative is the generalised one,
    0 or 2).
    """
    if loss == LOGISTIC:
        # one exp for the value, the derivative and the curvature:
        # log(1 + e^z) = max(z, 0) + log1p(e^-|z|), sigmoid from the same e
        e = math.exp(-abs(z))
        if z >= 0.0:
            sig = 1.0 / (1.0 + e)
            lz = z + math.log1p(e)
        else:
            sig = e / (1.0 + e)
            lz = math.log1p(e)
        return lz - y * z, sig - y, sig * (1.0 - sig)
    if loss == SQUARED_HINGE:
        m = 1.0 - y * z
        if m > 0.0:
            return m * m, -2.0 * y * m, 2.0
        return 0.0, 0.0, 0.0
    r = z - y
    return 0.5 * r * r, r, 1.0


@_inline
def _scalar_curv(loss, z, y):
    """``d2l/dz2`` alone (the Gauss-Newton kernels need no loss value)."""
    if loss == LOGISTIC:
        sig = _sigmoid(z)
        return sig * (1.0 - sig)
    if loss == SQUARED_HINGE:
        return 2.0 if y * z < 1.0 else 0.0
    return 1.0


@_inline
def _matmul(A, B):
    """``A @ B`` as a new C-contiguous array: ``np.dot(A, B, out)``.

    The same BLAS call as ``np.dot(A, B)``, whose numba implementation wraps
    this one and adds an ``np.zeros`` for an empty inner dimension: two
    more functions to compile in a new process (about 0.3 s per layout).
    """
    out = np.empty((A.shape[0], B.shape[1]))
    np.dot(A, B, out)
    return out


@_inline
def _rows(n):
    """``max(n, 1)``, the divisor of a mean over ``n`` rows, in the softmax
    and multi-output paths (numba's ``max`` is one more overload to compile
    per type).  The one-output fused loops keep ``max``: with this helper
    LLVM compiled :func:`linear_fg`'s fused loop about 15% slower (1e5 x 100,
    ``benchmarks/models_compare.py`` section 1)."""
    return n if n > 1 else 1


@_inline
def _penalty(w, lam, pK, penalize_b):
    """``(lam/2 |w_pen|^2)``; ``w_pen`` is W, and b if penalised."""
    m = w.shape[0] if penalize_b else pK
    acc = 0.0
    for j in range(m):
        acc += w[j] * w[j]
    return 0.5 * lam * acc


@_inline
def _add_penalty_grad(g, w, lam, pK, penalize_b):
    m = w.shape[0] if penalize_b else pK
    for j in range(m):
        g[j] += lam * w[j]


# --------------------------------------------------------------------------
# one output: fused loops
# --------------------------------------------------------------------------


@_inline
def _fg_one(w, X, Y, lam, fit_intercept, s, penalize_b, loss):
    n, p = X.shape
    g = np.zeros(w.shape[0])
    b = s * w[p] if fit_intercept else 0.0
    f = 0.0
    gb = 0.0
    # Two rows per iteration: their losses (exp, log1p: long latency) are
    # independent, so the CPU overlaps them; 14% faster at 1e5 x 100, where
    # one pass over X alone takes 60% of the time.  Four rows run out of
    # registers (slower).
    m = n - n % 2
    for i in range(0, m, 2):
        z0 = b
        z1 = b
        for j in range(p):
            z0 += X[i, j] * w[j]
            z1 += X[i + 1, j] * w[j]
        l0, d0, _ = _scalar_loss(loss, z0, Y[i, 0])
        l1, d1, _ = _scalar_loss(loss, z1, Y[i + 1, 0])
        f += l0 + l1
        for j in range(p):
            g[j] += d0 * X[i, j] + d1 * X[i + 1, j]
        gb += d0 + d1
    for i in range(m, n):
        z = b
        for j in range(p):
            z += X[i, j] * w[j]
        li, di, _ = _scalar_loss(loss, z, Y[i, 0])
        f += li
        for j in range(p):
            g[j] += di * X[i, j]
        gb += di
    inv = 1.0 / max(n, 1)
    for j in range(p):
        g[j] *= inv
    if fit_intercept:
        g[p] = s * gb * inv
    f = f * inv + _penalty(w, lam, p, penalize_b)
    _add_penalty_grad(g, w, lam, p, penalize_b)
    return f, g


@_inline
def _gn_one(w, v, X, Y, lam, fit_intercept, s, penalize_b, loss):
    n, p = X.shape
    out = np.zeros(w.shape[0])
    b = s * w[p] if fit_intercept else 0.0
    vb = s * v[p] if fit_intercept else 0.0
    ob = 0.0
    # z = x.w and a = x.v in the same pass over the row; two rows at a time
    # (see _fg_one)
    m = n - n % 2
    for i in range(0, m, 2):
        z0 = b
        a0 = vb
        z1 = b
        a1 = vb
        for j in range(p):
            z0 += X[i, j] * w[j]
            a0 += X[i, j] * v[j]
            z1 += X[i + 1, j] * w[j]
            a1 += X[i + 1, j] * v[j]
        c0 = _scalar_curv(loss, z0, Y[i, 0]) * a0
        c1 = _scalar_curv(loss, z1, Y[i + 1, 0]) * a1
        for j in range(p):
            out[j] += c0 * X[i, j] + c1 * X[i + 1, j]
        ob += c0 + c1
    for i in range(m, n):
        z = b
        a = vb
        for j in range(p):
            z += X[i, j] * w[j]
            a += X[i, j] * v[j]
        c = _scalar_curv(loss, z, Y[i, 0]) * a
        for j in range(p):
            out[j] += c * X[i, j]
        ob += c
    inv = 1.0 / max(n, 1)
    for j in range(p):
        out[j] *= inv
    if fit_intercept:
        out[p] = s * ob * inv
    _add_penalty_grad(out, v, lam, p, penalize_b)
    return out


@_inline
def _diag_one(w, X, Y, lam, fit_intercept, s, penalize_b, loss, mu):
    n, p = X.shape
    out = np.zeros(w.shape[0])
    b = s * w[p] if fit_intercept else 0.0
    ob = 0.0
    for i in range(n):
        z = b
        for j in range(p):
            z += X[i, j] * w[j]
        hi = _scalar_curv(loss, z, Y[i, 0])
        if hi != 0.0:
            for j in range(p):
                xc = X[i, j] - mu[j]
                out[j] += hi * xc * xc
            ob += hi
    inv = 1.0 / max(n, 1)
    pb = lam if (fit_intercept and penalize_b) else 0.0
    for j in range(p):
        m = mu[j] / s
        out[j] = out[j] * inv + lam + m * m * pb
    if fit_intercept:
        out[p] = s * s * ob * inv + pb
    return out


# --------------------------------------------------------------------------
# several outputs: BLAS
# --------------------------------------------------------------------------

_LOG2E = 1.4426950408889634
# ln 2 in two parts (Cody & Waite): k * _LN2_HI is exact for |k| < 2**11
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
#: 1/j!, j = 0..13: the Taylor polynomial of exp on [-ln2/2, ln2/2], whose
#: remainder r^14/14! < 5e-18 there
_EXP_COEF = tuple(1.0 / math.factorial(j) for j in range(14))


# Not inlined into the callers, and only "contract" (fused multiply-add):
# numba's inlining would compile this with the callers' "reassoc", which may
# rewrite (x - k*hi) - k*lo as x - k*(hi + lo) and lose the split of ln 2.
@numba.njit(cache=_jit.CACHE, error_model="numpy", nogil=True, fastmath={"contract"})
def _exp_nonpositive(a):
    r"""``a[:] = exp(a)`` for ``a <= 0``, within one ulp, in a loop LLVM vectorises.

    :math:`e^x = 2^k e^r` with :math:`k = \mathrm{rint}(x \log_2 e)`,
    :math:`r = x - k \ln 2` (:math:`|r| \le \ln 2 / 2`), :math:`e^r` by its
    Taylor polynomial of degree 13 and :math:`2^k` built from its bits.
    Arguments below -708 are taken as -708 (:math:`e^{-708} \approx 3\cdot
    10^{-308}`, the smallest power with a normal :math:`2^k`): the softmax
    adds these to a row sum of at least 1, where they vanish all the same.
    Max error 1 ulp against NumPy's ``exp`` on :math:`[-708, 0]`
    (``tests/test_models.py``).
    """
    c = _EXP_COEF
    for i in range(a.shape[0]):
        # max(a[i], -708.0), as numba's max selects (NaN stays NaN)
        x = -708.0 if -708.0 > a[i] else a[i]
        kf = np.rint(x * _LOG2E)
        r = (x - kf * _LN2_HI) - kf * _LN2_LO
        q = c[13]
        q = q * r + c[12]
        q = q * r + c[11]
        q = q * r + c[10]
        q = q * r + c[9]
        q = q * r + c[8]
        q = q * r + c[7]
        q = q * r + c[6]
        q = q * r + c[5]
        q = q * r + c[4]
        q = q * r + c[3]
        q = q * r + c[2]
        q = q * r + c[1]
        q = q * r + c[0]
        a[i] = q * np.int64((np.int64(kf) + 1023) << 52).view(np.float64)


@_inline
def _fg_softmax(w, X, Y, lam, fit_intercept, s, penalize_b):
    r""":func:`_fg_multi` for the softmax: the same values, in flat passes.

    ``Z = XW`` (BLAS); per row the intercept and the row max :math:`m_i`
    (subtracted: no overflow, and no cancellation between a large
    log-sum-exp and :math:`z_{ik}`); one flat exponential pass; per row the
    sum :math:`t_i \ge 1`, :math:`\log t_i` and :math:`R = E/t - Y`
    with its column sums (the intercepts' gradient); :math:`X^T R` (BLAS).
    The loss is :math:`\sum_i \log t_i - \sum_{ik} Y_{ik}(z_{ik} - m_i)`
    (rows of ``Y`` sum to one).
    """
    n, p = X.shape
    K = Y.shape[1]
    pK = p * K
    Z = _matmul(X, w[:pK].reshape((p, K)))
    zf = Z.ravel()
    yf = Y.ravel()
    # The row max and the shift in one pass over the rows (the same
    # operations in the same order: the same bits), one loop fewer to compile
    bias = np.empty(K)
    gb = np.empty(K)
    for k in range(K):
        bias[k] = s * w[pK + k] if fit_intercept else 0.0
        gb[k] = 0.0
    yz = 0.0
    for i in range(n):
        base = i * K
        m = zf[base] + bias[0]
        zf[base] = m
        for k in range(1, K):
            v = zf[base + k] + bias[k]
            zf[base + k] = v
            if v > m:  # max(m, v), as numba's max selects
                m = v
        for k in range(K):
            d = zf[base + k] - m
            zf[base + k] = d
            yz += yf[base + k] * d
    _exp_nonpositive(zf)
    tot = np.empty(n)
    for i in range(n):
        base = i * K
        t = 0.0
        for k in range(K):
            t += zf[base + k]
        tot[i] = t
    # its own loop: fused into the row sums' loop, this sum came out with other
    # bits (LLVM, under "reassoc", orders it by the loop it is in)
    f = 0.0
    for i in range(n):
        f += math.log(tot[i])
        tot[i] = 1.0 / tot[i]
    for i in range(n):
        base = i * K
        inv = tot[i]
        for k in range(K):
            r = zf[base + k] * inv - yf[base + k]
            zf[base + k] = r
            gb[k] += r
    # X^T R straight into g's weights (then scaled in place: the same bits
    # as a product array copied over), one array fewer
    g = np.empty(w.shape[0])
    np.dot(X.T, Z, g[:pK].reshape((p, K)))
    inv_n = 1.0 / _rows(n)
    for j in range(pK):
        g[j] *= inv_n
    if fit_intercept:
        for k in range(K):
            g[pK + k] = s * gb[k] * inv_n
    _add_penalty_grad(g, w, lam, pK, penalize_b)
    return (f - yz) * inv_n + _penalty(w, lam, pK, penalize_b), g


@_inline
def _scores(w, X, fit_intercept, s, p, K, pK):
    """``Z = X W + s b`` (n, K), a fresh C-contiguous array."""
    Z = _matmul(X, w[:pK].reshape((p, K)))
    if fit_intercept:
        for i in range(Z.shape[0]):
            for k in range(K):
                Z[i, k] += s * w[pK + k]
    return Z


@_inline
def _row_loss(loss, Z, Y, i, K):
    """Loss of row ``i``; overwrites ``Z[i]`` with its derivative dl/dz."""
    if loss == SOFTMAX:
        m = Z[i, 0]
        for k in range(1, K):
            if Z[i, k] > m:
                m = Z[i, k]
        # l = logsumexp(z) - y.z (rows of Y sum to one), from z - m: no
        # overflow, and no cancellation between a large logsumexp and z_k
        tot = 0.0
        yz = 0.0
        for k in range(K):
            d = Z[i, k] - m
            yz += Y[i, k] * d
            Z[i, k] = math.exp(d)
            tot += Z[i, k]
        for k in range(K):
            Z[i, k] = Z[i, k] / tot - Y[i, k]
        return math.log(tot) - yz
    li = 0.0
    for k in range(K):
        lk, dk, _ = _scalar_loss(loss, Z[i, k], Y[i, k])
        li += lk
        Z[i, k] = dk
    return li


@_inline
def _row_hess(loss, Z, Y, U, i, K):
    """Overwrite ``U[i]`` with :math:`H_i U_i`, ``H_i`` the loss Hessian at ``Z[i]``.

    Softmax: :math:`H = \\mathrm{diag}(p) - pp^T` (``Z[i]`` is overwritten
    with ``p``); elementwise losses: the diagonal of second derivatives.
    """
    if loss == SOFTMAX:
        m = Z[i, 0]
        for k in range(1, K):
            if Z[i, k] > m:
                m = Z[i, k]
        tot = 0.0
        for k in range(K):
            Z[i, k] = math.exp(Z[i, k] - m)
            tot += Z[i, k]
        pu = 0.0
        for k in range(K):
            Z[i, k] /= tot
            pu += Z[i, k] * U[i, k]
        for k in range(K):
            U[i, k] = Z[i, k] * (U[i, k] - pu)
    elif loss == SQUARED_HINGE:
        for k in range(K):
            U[i, k] *= _scalar_curv(loss, Z[i, k], Y[i, k])


@_inline
def _finish_multi(g, GW, R, w, lam, fit_intercept, s, penalize_b, n, pK, K):
    """``g = [GW / n, s * colsum(R) / n] + penalty gradient``."""
    inv = 1.0 / _rows(n)
    flat = GW.ravel()
    for j in range(pK):
        g[j] = flat[j] * inv
    if fit_intercept:
        for k in range(K):
            acc = 0.0
            for i in range(R.shape[0]):
                acc += R[i, k]
            g[pK + k] = s * acc * inv
    _add_penalty_grad(g, w, lam, pK, penalize_b)


@_inline
def _fg_multi(w, X, Y, lam, fit_intercept, s, penalize_b, loss):
    if loss == SOFTMAX:
        return _fg_softmax(w, X, Y, lam, fit_intercept, s, penalize_b)
    n, p = X.shape
    K = Y.shape[1]
    pK = p * K
    Z = _scores(w, X, fit_intercept, s, p, K, pK)
    f = 0.0
    for i in range(n):
        f += _row_loss(loss, Z, Y, i, K)
    g = np.empty(w.shape[0])
    _finish_multi(g, _matmul(X.T, Z), Z, w, lam, fit_intercept, s, penalize_b, n, pK, K)
    return f / _rows(n) + _penalty(w, lam, pK, penalize_b), g


@_inline
def _gn_multi(w, v, X, Y, lam, fit_intercept, s, penalize_b, loss):
    n, p = X.shape
    K = Y.shape[1]
    pK = p * K
    U = _scores(v, X, fit_intercept, s, p, K, pK)
    if loss != SQUARED:
        Z = _scores(w, X, fit_intercept, s, p, K, pK)
        for i in range(n):
            _row_hess(loss, Z, Y, U, i, K)
    out = np.empty(w.shape[0])
    _finish_multi(out, _matmul(X.T, U), U, v, lam, fit_intercept, s, penalize_b, n, pK, K)
    return out


@_inline
def _diag_multi(w, X, Y, lam, fit_intercept, s, penalize_b, loss, mu):
    n, p = X.shape
    K = Y.shape[1]
    pK = p * K
    D = np.ones((n, K))
    if loss != SQUARED:
        Z = _scores(w, X, fit_intercept, s, p, K, pK)
        for i in range(n):
            if loss == SOFTMAX:
                # diag(diag(p) - pp^T) = p (1 - p); _row_hess leaves p in Z
                _row_hess(loss, Z, Y, D, i, K)
                for k in range(K):
                    D[i, k] = Z[i, k] * (1.0 - Z[i, k])
            else:
                _row_hess(loss, Z, Y, D, i, K)
    X2 = X - mu  # mu: zeros, or the centring of centered_gn_diag
    X2 *= X2
    DW = _matmul(X2.T, D)
    out = np.empty(w.shape[0])
    inv = 1.0 / _rows(n)
    flat = DW.ravel()
    pb = lam if (fit_intercept and penalize_b) else 0.0
    for j in range(p):
        m = mu[j] / s
        for k in range(K):
            out[j * K + k] = flat[j * K + k] * inv + lam + m * m * pb
    if fit_intercept:
        for k in range(K):
            acc = 0.0
            for i in range(n):
                acc += D[i, k]
            out[pK + k] = s * s * acc * inv + pb
    return out


# --------------------------------------------------------------------------
# the public kernels (module globals: cacheable, and one type each for the
# solvers' loops)
# --------------------------------------------------------------------------


@_kernel
def linear_fg(w, X, Y, lam, fit_intercept, s, penalize_b, loss):
    """Mean loss and its gradient (see the module docstring for the objective).

    Returns
    -------
    f : float
    g : ndarray, shape (n_params,)
    """
    if Y.shape[1] == 1:
        return _fg_one(w, X, Y, lam, fit_intercept, s, penalize_b, loss)
    return _fg_multi(w, X, Y, lam, fit_intercept, s, penalize_b, loss)


# --------------------------------------------------------------------------
# one kernel per loss: what a fit compiles
# --------------------------------------------------------------------------

#: the loss a kernel of :func:`fg_kernel` is specialised for (rebound per loss;
#: never read at this value)
LOSS = -1
#: the kernels of one output (``Y`` of one column), every loss: see :func:`_fg_of_loss`
ONE_OUTPUT = -2
#: loss id -> its name, the suffix of its kernels' names
LOSS_NAMES = {SQUARED: "squared", LOGISTIC: "logistic", SOFTMAX: "softmax",
              SQUARED_HINGE: "squared_hinge", ONE_OUTPUT: "one_output"}  # fmt: skip


#: whether a kernel of :func:`fg_kernel` works in centred coordinates
#: (rebound per kernel; never read at this value)
CENTERED = False


def _fg_of_loss(w, X, Y, lam, fit_intercept, s, penalize_b, loss, mu=None):
    """:func:`linear_fg` for the loss ``LOSS`` (a global, a constant when compiled).

    numba prunes the branches of the other losses before it compiles (a test
    of two global constants), and LLVM folds ``LOSS`` through the shared
    helpers: a fit compiles its own loss only, about a third of the code of
    :func:`linear_fg` with every loss in it.  ``loss`` (the same id, in
    ``args``) is not read.

    With ``CENTERED`` (another global constant), :func:`centered_fg` for
    ``LOSS``: ``w`` holds the centred coordinates and ``mu`` is their centre
    (:func:`from_centered`).  One function for both rather than a centred
    kernel that inlines this one: numba copies the IR it inlines, scope and
    all, at each level, and the second level cost about 0.3 s of a first
    ``LogisticRegression().fit``.
    """
    if CENTERED:
        w = from_centered(w, mu, s)
    if LOSS == SOFTMAX:
        f, g = _fg_softmax(w, X, Y, lam, fit_intercept, s, penalize_b)
    elif LOSS == ONE_OUTPUT:
        # the fused one-output loop with the loss read at run time, as in
        # linear_fg: with a constant loss LLVM vectorises its sums otherwise
        # under "reassoc" (other bits; an L-BFGS run then ends elsewhere)
        f, g = _fg_one(w, X, Y, lam, fit_intercept, s, penalize_b, loss)
    else:
        f, g = _fg_multi(w, X, Y, lam, fit_intercept, s, penalize_b, LOSS)
    if CENTERED:
        g = _grad_to_centered(g, mu, s)
    return f, g


def _specialise(fn, loss, options):
    """``fn`` compiled for ``loss`` (see :func:`fastopt._jit.specialised`)."""
    return _jit.specialised(fn, LOSS_NAMES[loss], options, LOSS=loss)


_PER_LOSS = {}


def fg_kernel(loss, n_outputs, centered=False):
    """The cached ``fg`` kernel of ``loss`` alone (:func:`linear_fg`'s values, bit for bit).

    ``n_outputs``: the columns of ``Y`` (one: the one-output kernel of every
    loss, which must then get ``Y`` of one column); ``centered``:
    :func:`centered_fg`'s.  Built on first use: a fit compiles the code of
    its case only (:func:`linear_fg` compiles all of them).
    """
    if n_outputs == 1 and loss in LOSS_NAMES:
        loss = ONE_OUTPUT
    key = (loss, centered)
    if key not in _PER_LOSS:
        if loss not in LOSS_NAMES:
            raise ValueError(f"unknown loss id {loss!r}")
        if centered:
            _PER_LOSS[key] = _jit.specialised(_fg_of_loss, "centered_" + LOSS_NAMES[loss],
                                              _KERNEL, LOSS=loss, CENTERED=True)  # fmt: skip
        else:
            _PER_LOSS[key] = _specialise(_fg_of_loss, loss, _KERNEL)
    return _PER_LOSS[key]


@_kernel
def linear_gn(w, v, X, Y, lam, fit_intercept, s, penalize_b, loss):
    r"""Exact Gauss-Newton product :math:`Gv`, the penalty included.

    :math:`G = \frac1n \sum_i \tilde X_i^T H_i \tilde X_i + \lambda P`,
    :math:`H_i` the Hessian of the loss in :math:`z_i` and :math:`P` the
    penalty's diagonal 0/1 mask.  For these convex losses (canonical links)
    :math:`G` is the Hessian itself; for the squared hinge it is the
    generalised Hessian.
    """
    if Y.shape[1] == 1:
        return _gn_one(w, v, X, Y, lam, fit_intercept, s, penalize_b, loss)
    return _gn_multi(w, v, X, Y, lam, fit_intercept, s, penalize_b, loss)


@_kernel
def linear_gn_diag(w, X, Y, lam, fit_intercept, s, penalize_b, loss):
    r"""Exact diagonal of the Gauss-Newton matrix of :func:`linear_gn`.

    :math:`G_{(j,k),(j,k)} = \frac1n \sum_i x_{ij}^2 (H_i)_{kk} + \lambda`.
    """
    mu = np.zeros(X.shape[1])
    if Y.shape[1] == 1:
        return _diag_one(w, X, Y, lam, fit_intercept, s, penalize_b, loss, mu)
    return _diag_multi(w, X, Y, lam, fit_intercept, s, penalize_b, loss, mu)


@_kernel
def linear_loss(w, X, Y, lam, fit_intercept, s, penalize_b, loss):
    """The value of :func:`linear_fg` alone."""
    # the inlined pieces, not a call of linear_fg: see _exact_kernel
    if Y.shape[1] == 1:
        return _fg_one(w, X, Y, lam, fit_intercept, s, penalize_b, loss)[0]
    return _fg_multi(w, X, Y, lam, fit_intercept, s, penalize_b, loss)[0]


# --------------------------------------------------------------------------
# centred coordinates: an exact change of variables for the quasi-Newton and
# conjugate-gradient methods (see fastopt.models._linear.CENTERED_METHODS)
# --------------------------------------------------------------------------


@_exact_kernel
def from_centered(u, mu, s):
    r"""The model's parameters ``w`` at centred coordinates ``u``.

    In centred coordinates the scores are
    :math:`z_i = U^T (x_i - \mu) + s\,c'`, the same scores as
    :math:`W^T x_i + s\,b` with

    .. math::

        W = U, \qquad b = c' - U^T \mu / s,

    so :math:`f(u) = f(w(u))` exactly, whatever :math:`\mu`.  With
    :math:`\mu` near the column means the weights no longer move the mean
    score, which decouples them from the intercept (the conditioning of raw,
    uncentred features).  ``u`` has the layout of ``w`` (an intercept is
    required: ``fit_intercept=True``).
    """
    p = mu.shape[0]
    K = (u.shape[0]) // (p + 1)
    pK = p * K
    w = u.copy()
    for k in range(K):
        acc = 0.0
        for j in range(p):
            acc += mu[j] * u[j * K + k]
        w[pK + k] = u[pK + k] - acc / s
    return w


@_exact_kernel
def _grad_to_centered(g, mu, s):
    r"""In place: :math:`g_U = g_W - \mu\, g_b^T / s` (the transpose of :func:`from_centered`)."""
    p = mu.shape[0]
    K = g.shape[0] // (p + 1)
    pK = p * K
    for j in range(p):
        m = mu[j] / s
        for k in range(K):
            g[j * K + k] -= m * g[pK + k]
    return g


def grad_from_centered(g, mu, s):
    r"""The gradient in ``w`` from the gradient in centred coordinates.

    :math:`g_W = g_U + \mu\, g_b^T / s`, :math:`g_b = g_{c'}`: the map of
    :func:`_grad_to_centered` with ``-mu`` (the same bits as adding).  Plain
    Python around that kernel (a fit has compiled it): a kernel of its own
    was 0.2 s of compiling in a cold process, for one call per fit.
    """
    return _grad_to_centered(g.copy(), -mu, s)


@_kernel
def centered_fg(u, X, Y, lam, fit_intercept, s, penalize_b, loss, mu):
    """:func:`linear_fg` in the centred coordinates of :func:`from_centered`.

    ``args`` are the linear kernels' plus ``mu`` (length p); the extra work
    is O(p K) per call, nothing per sample.
    """
    w = from_centered(u, mu, s)
    # linear_fg's inlined pieces, not a call of it: see _exact_kernel
    if Y.shape[1] == 1:
        f, g = _fg_one(w, X, Y, lam, fit_intercept, s, penalize_b, loss)
    else:
        f, g = _fg_multi(w, X, Y, lam, fit_intercept, s, penalize_b, loss)
    return f, _grad_to_centered(g, mu, s)


@_kernel
def centered_gn(u, v, X, Y, lam, fit_intercept, s, penalize_b, loss, mu):
    r""":func:`linear_gn` in centred coordinates.

    :math:`T^T G T v`, ``T`` the linear map of :func:`from_centered`.
    """
    w = from_centered(u, mu, s)
    tv = from_centered(v, mu, s)
    # linear_gn's inlined pieces, not a call of it: see _exact_kernel
    if Y.shape[1] == 1:
        out = _gn_one(w, tv, X, Y, lam, fit_intercept, s, penalize_b, loss)
    else:
        out = _gn_multi(w, tv, X, Y, lam, fit_intercept, s, penalize_b, loss)
    return _grad_to_centered(out, mu, s)


@_kernel
def centered_gn_diag(u, X, Y, lam, fit_intercept, s, penalize_b, loss, mu):
    r"""The diagonal of :func:`centered_gn`'s matrix :math:`T^T G T`.

    :math:`\frac1n \sum_i (x_{ij} - \mu_j)^2 (H_i)_{kk} + \lambda
    (1 + [\text{penalize\_b}]\,\mu_j^2 / s^2)` for the weights (the column
    of ``T`` for weight ``(j, k)`` is that weight minus ``mu_j / s`` times
    intercept ``k``), the intercepts' entries unchanged.
    """
    w = from_centered(u, mu, s)
    if Y.shape[1] == 1:
        return _diag_one(w, X, Y, lam, fit_intercept, s, penalize_b, loss, mu)
    return _diag_multi(w, X, Y, lam, fit_intercept, s, penalize_b, loss, mu)
