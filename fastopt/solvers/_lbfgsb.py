r"""The bound-constrained steps of L-BFGS-B (Byrd, Lu, Nocedal & Zhu 1995).

Cached kernels that :func:`fastopt.solvers.lbfgs._lbfgsb_loop` calls once per
iteration; the Python and compiled loops call the same machine code.  None
allocates: they borrow their work arrays (:func:`fastopt._jit.borrowing_kernel`),
whose reference counting was a third of a 3-variable fit's time.  The
limited-memory matrix is kept in its compact form (Byrd, Nocedal & Schnabel
1994)

.. math::

    B = \theta I - W M W^T, \qquad W = [\,Y \;\; \theta S\,], \qquad
    M^{-1} = K = \begin{bmatrix} -D & L^T \\ L & \theta S^T S \end{bmatrix},

with the pairs as the rows of ``S``, ``Y`` (oldest first), :math:`D` the
diagonal and :math:`L` the strictly lower triangle of :math:`S^T Y`
(``SY[i, j]`` :math:`= s_i^T y_j`), and :math:`\theta = y^T y / s^T y` of the
newest pair.  The :math:`2m \times 2m` systems are solved by blocks with
two :math:`m \times m` Cholesky factors each, as L-BFGS-B's ``formt`` and
``formk`` do (a factor that is not positive definite makes the loop drop its
memory, as L-BFGS-B does).
"""

import math

import numpy as np

from .. import _jit

_EPS = float(np.finfo(np.float64).eps)

#: ``where`` codes at the generalized Cauchy point (L-BFGS-B's ``iwhere``):
#: free, at the lower bound, at the upper bound, fixed (``lb == ub``)
FREE, AT_LOWER, AT_UPPER, FIXED = 0, 1, 2, 3

#: :func:`subspace_point`'s outcomes: ``z`` written; the reduced system is
#: needed (:func:`reduced_subspace_point`)
SUBSPACE_DONE, SUBSPACE_REDUCED = 1, 2

#: ``0`` typed ``int64``, not ``Literal[int](0)``, for the integer arguments
#: of the kernels called (not inlined) from compiled code: numba compiles a
#: callee once per argument type, and the literal ``0`` is a type of its own.
#: A counter started at ``0`` is typed the literal too while type inference
#: propagates, and the call it reaches compiles once for it before once for
#: ``int64``.  That compiled ``reduced_step``, ``chol_factor``, ``chol_solve``
#: twice and ``heap_sift_down`` three times in a cold process (the first
#: bounded ``lbfgs`` call: 11.0 to 7.1 s of CPU), and ``form_middle`` twice
#: in the compiled loop.  LLVM folds it as it folds ``0``.
INT0 = np.int64(0)

#: Rows of the work arrays that :func:`cauchy_point`, :func:`subspace_point`
#: and :func:`reduced_subspace_point` receive bundled by shape, as views of
#: a few arrays instead of one argument each.  numba passes an array to a
#: function it does not inline as its 5 + 2 ndim machine words: the two
#: kernels called every iteration took 17 and 21 arrays (about 280 words
#: stored and loaded per iteration), and at the sizes of a small fit
#: (3 variables) passing them was a sizeable share of the solver's time.
#: Bundled, they take 6 arrays each, and the kernels take their rows as
#: views (a few integer operations, no copy):
#:
#: ``V`` (``12 x n``, float): x, g, lb, ub (copied in by the loop), the
#: direction d, the trial point xt, the subspace point z, the Cauchy point
#: xcp, the step's s and y, dv (the Cauchy path's direction, then the
#: subspace step) and tb (the breakpoints, and the trial gradient);
#: ``I`` (``2 x n``, int64): ib (breakpoint indices, then the free
#: variables), where (see :data:`FREE`);
#: ``P`` (``2 x m x n``): S, Y (the pairs as rows, oldest first);
#: ``MM`` (``2 x m x m``): SY, SS; ``KK`` (``2 x 2m x 2m``): K (the middle
#: matrix's factor), Kz (the reduced system's);
#: ``M2`` (``6 x 2m``): dinv, c, p, v, wbp, wv.
(V_X, V_G, V_LB, V_UB, V_D, V_XT, V_Z, V_XCP, V_S, V_Y, V_DV, V_TB) = range(12)
V_ROWS = 12
I_IB, I_WHERE = range(2)
I_ROWS = 2
M2_DINV, M2_C, M2_P, M2_V, M2_WBP, M2_WV = range(6)
M2_ROWS = 6


def work_arrays(n, m):
    """The bundles ``V, I, P, MM, KK, M2`` (:data:`V_ROWS`): ``n`` variables, memory ``m``."""
    m2 = 2 * m
    return (
        np.zeros((V_ROWS, n)),
        np.zeros((I_ROWS, n), dtype=np.int64),
        np.zeros((2, m, n)),
        np.zeros((2, m, m)),
        np.zeros((2, m2, m2)),
        np.zeros((M2_ROWS, m2)),
    )


@_jit.borrowing_kernel
def chol_factor(a, r0, k):
    """Cholesky ``L L'`` of ``a[r0:r0+k, r0:r0+k]`` in place (lower); False if not pd.

    The diagonal holds the reciprocals :math:`1 / L_{jj}` (as LINPACK's
    ``dpofa`` users often keep them): the factor's columns and
    :func:`chol_solve` then multiply where they would divide, which took
    a division out of each step of their sequential recurrences.
    """
    for j in range(k):
        s = a[r0 + j, r0 + j]
        for t in range(j):
            s -= a[r0 + j, r0 + t] * a[r0 + j, r0 + t]
        if not (s > 0.0 and math.isfinite(s)):
            return False
        inv = 1.0 / math.sqrt(s)
        a[r0 + j, r0 + j] = inv
        for i in range(j + 1, k):
            s = a[r0 + i, r0 + j]
            for t in range(j):
                s -= a[r0 + i, r0 + t] * a[r0 + j, r0 + t]
            a[r0 + i, r0 + j] = s * inv
    return True


_chol_factor_i = _jit.borrowing_helper(chol_factor)


@_jit.borrowing_kernel
def chol_solve(a, r0, k, out, o0):
    """``out[o0:o0+k] = (L L')^{-1} out[o0:o0+k]`` from :func:`chol_factor`'s factor."""
    for i in range(k):
        s = out[o0 + i]
        for t in range(i):
            s -= a[r0 + i, r0 + t] * out[o0 + t]
        out[o0 + i] = s * a[r0 + i, r0 + i]
    for i in range(k - 1, -1, -1):
        s = out[o0 + i]
        for t in range(i + 1, k):
            s -= a[r0 + t, r0 + i] * out[o0 + t]
        out[o0 + i] = s * a[r0 + i, r0 + i]


_chol_solve_i = _jit.borrowing_helper(chol_solve)


@_jit.borrowing_kernel
def form_middle(MM, KK, M2, col, theta, nt):
    r"""Factor the middle matrix :math:`K = M^{-1}` (L-BFGS-B's ``formt``).

    :math:`K` is quasi-definite; its Schur complement
    :math:`T = \theta S^T S + L D^{-1} L^T` is positive definite, and its
    Cholesky factor (in ``K[:col, :col]``) is all :func:`mid_solve` needs.
    Also writes :math:`D^{-1}` (``1 / SY[q, q]``) to ``dinv[:col]``, for
    :func:`mid_solve` and :func:`quasi_newton_step`: multiplying by it
    instead of dividing by :math:`D` in each term took the :math:`O(m^3)`
    divisions out of this kernel (460 to 210 ns at ``m = 10``; a division
    costs several multiplications, and the memory is often larger than a
    small problem).  Each entry sums the :math:`L D^{-1} L^T` terms first
    and adds :math:`\theta S^T S` last, in ``formt``'s order.  False if
    ``T`` is not numerically positive definite.

    :math:`C = L D^{-1} L^T` does not depend on :math:`\theta`, and
    appending a pair leaves its leading rows (and ``dinv``'s) as they were:
    ``C`` is kept in the lower triangle of ``K``'s unused block
    ``K[m:m+col, m:m+col]``, whose first ``nt`` rows (and ``dinv[:nt]``)
    the caller says are current; only the others are summed, in the same
    order, so the factor is the same to the bit.  Each iteration adds one
    row instead of recomputing the :math:`O(m^3)` sums (a third of this
    kernel's time at ``m = 10`` in the bounded decay fits).  The caller
    passes ``nt = 0`` after the memory dropped its oldest pair or was
    reset, and at the start of a run.  The arrays come bundled
    (:data:`V_ROWS`): ``SY, SS`` from ``MM``, ``K`` from ``KK``, ``dinv``
    from ``M2``.
    """
    SY, SS, K, dinv = MM[0], MM[1], KK[0], M2[M2_DINV]
    m = SY.shape[0]
    for q in range(nt, col):
        dinv[q] = 1.0 / SY[q, q]
    for i in range(nt, col):
        for j in range(i + 1):
            t = 0.0
            for q in range(j):  # (L D^-1 L')_ij, L_iq = SY[i, q] for q < i
                t += SY[i, q] * SY[j, q] * dinv[q]
            K[m + i, m + j] = t
    for i in range(col):
        for j in range(i + 1):
            K[i, j] = K[m + i, m + j] + theta * SS[i, j]
    return _chol_factor_i(K, 0, col)


@_jit.borrowing_kernel
def mid_solve(SY, col, K, dinv, v, out):
    r"""``out = M v`` (solve :math:`K\,out = v`) by blocks, with :func:`form_middle`'s factor.

    With :math:`K = [[-D, L^T], [L, \theta S^T S]]`:
    :math:`b = T^{-1}(v_2 + L D^{-1} v_1)`, :math:`a = D^{-1}(L^T b - v_1)`
    (``dinv`` holds :math:`D^{-1}`, from :func:`form_middle`).
    """
    for i in range(col):
        w = 0.0
        for j in range(i):
            w += SY[i, j] * v[j] * dinv[j]
        out[col + i] = v[col + i] + w
    _chol_solve_i(K, 0, col, out, col)
    for i in range(col):
        w = -v[i]
        for j in range(i + 1, col):
            w += SY[j, i] * out[col + j]
        out[i] = w * dinv[i]


_mid_solve_i = _jit.borrowing_helper(mid_solve)


@_jit.borrowing_kernel
def add_pair(P, MM, V, col):
    """Append the pair ``(s, y)`` (dropping the oldest when full); returns the new count.

    Keeps ``SY[i, j] = s_i . y_j`` and ``SS[i, j] = s_i . s_j`` current in
    :math:`O(mn)`.  The arrays come bundled (:data:`V_ROWS`): the pairs
    ``S, Y`` in ``P``, ``SY, SS`` in ``MM``, the new pair ``s, y`` in ``V``.
    """
    S, Y, SY, SS, s, y = P[0], P[1], MM[0], MM[1], V[V_S], V[V_Y]
    m = S.shape[0]
    n = S.shape[1]
    if col == m:
        for i in range(m - 1):
            for t in range(n):
                S[i, t] = S[i + 1, t]
                Y[i, t] = Y[i + 1, t]
            for j in range(m - 1):
                SY[i, j] = SY[i + 1, j + 1]
                SS[i, j] = SS[i + 1, j + 1]
        col = m - 1
    for t in range(n):
        S[col, t] = s[t]
        Y[col, t] = y[t]
    for i in range(col + 1):
        sy_i = 0.0  # s_i . y_new
        sy_n = 0.0  # s_new . y_i
        ss = 0.0
        for t in range(n):
            sy_i += S[i, t] * y[t]
            sy_n += s[t] * Y[i, t]
            ss += S[i, t] * s[t]
        SY[i, col] = sy_i
        SY[col, i] = sy_n
        SS[i, col] = ss
        SS[col, i] = ss
    return col + 1


@_jit.borrowing_kernel
def heap_sift_down(tb, ib, i, size):
    """Restore the min-heap on ``tb[:size]`` (indices ``ib`` alongside) below ``i``."""
    t = tb[i]
    b = ib[i]
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        if child + 1 < size and tb[child + 1] < tb[child]:
            child += 1
        if not tb[child] < t:
            break
        tb[i] = tb[child]
        ib[i] = ib[child]
        i = child
    tb[i] = t
    ib[i] = b


@_jit.borrowing_kernel
def heap_pop(tb, ib, size):
    """``(t, i)``: the smallest breakpoint of the heap ``tb[:size]``, removed from it."""
    t = tb[0]
    b = ib[0]
    size -= 1
    if size > 0:
        tb[0] = tb[size]
        ib[0] = ib[size]
        heap_sift_down(tb, ib, INT0, size)
    return t, b


@_jit.borrowing_kernel
def cauchy_point(V, I, P, MM, KK, M2, col, theta):
    r"""The generalized Cauchy point along the projected steepest-descent path.

    Byrd et al. (1995), Algorithm CP (L-BFGS-B's ``cauchy``): the piecewise
    quadratic :math:`m(x(t))`, :math:`x(t) = P(x - t g)`, is searched from
    :math:`t = 0` over its breakpoints in increasing order, updating
    :math:`f' = g^T d + \ldots` and :math:`f''` in :math:`O(m)` per
    breakpoint through the compact form, until the first local minimizer.
    Writes the point to ``xcp``, :math:`c = W^T(x^c - x)` to ``c``,
    :math:`M c` to ``v`` (what the subspace step needs; from the product
    :math:`M p` already made when no breakpoint was passed) and each
    variable's state there to ``where`` (:data:`FREE`, :data:`AT_LOWER`,
    :data:`AT_UPPER`, :data:`FIXED`).  ``p, v, wbp`` (``2m``), ``dv, tb``
    (``n``) and ``ib`` (``n``, integer) are work arrays.  Returns False when
    a factor fails (a non-finite product).  The arrays come bundled
    (:data:`V_ROWS`); ``x, g, lb, ub`` are read, the memory ``S, Y, SY`` and
    the factor ``K``, ``dinv`` from :func:`form_middle`.
    """
    x, g, lb, ub, xcp, dv, tb = V[V_X], V[V_G], V[V_LB], V[V_UB], V[V_XCP], V[V_DV], V[V_TB]
    ib, where = I[I_IB], I[I_WHERE]
    S, Y, SY, K = P[0], P[1], MM[0], KK[0]
    dinv, c, p, v, wbp = M2[M2_DINV], M2[M2_C], M2[M2_P], M2[M2_V], M2[M2_WBP]
    n = x.shape[0]
    col2 = 2 * col
    for j in range(col2):
        p[j] = 0.0
        c[j] = 0.0
    f1 = 0.0
    nbreak = INT0
    bounded = True
    moving = False
    for i in range(n):
        neg = -g[i]
        if lb[i] == ub[i]:
            w = FIXED
        else:
            w = FREE
            if x[i] <= lb[i]:
                if neg <= 0.0:
                    w = AT_LOWER
            elif x[i] >= ub[i]:
                if neg >= 0.0:
                    w = AT_UPPER
        where[i] = w
        if w != FREE or neg == 0.0:
            dv[i] = 0.0
            continue
        moving = True
        dv[i] = neg
        f1 -= neg * neg
        for j in range(col):
            p[j] += Y[j, i] * neg
            p[col + j] += S[j, i] * neg
        if neg < 0.0 and lb[i] > -math.inf:
            tb[nbreak] = (x[i] - lb[i]) / (-neg)
            ib[nbreak] = i
            nbreak += 1
        elif neg > 0.0 and ub[i] < math.inf:
            tb[nbreak] = (ub[i] - x[i]) / neg
            ib[nbreak] = i
            nbreak += 1
        else:
            bounded = False
    for j in range(col):
        p[col + j] *= theta
    for i in range(n):
        xcp[i] = x[i]
    if not moving:
        for j in range(col2):
            v[j] = 0.0  # M c, c = 0
        return True
    f2 = -theta * f1
    f2_org = f2
    if col > 0:
        _mid_solve_i(SY, col, K, dinv, p, v)
        vp = 0.0
        for j in range(col2):
            vp += v[j] * p[j]
        f2 -= vp
    dtm = -f1 / f2
    tsum = 0.0
    all_fixed = False
    k = 0  # breakpoints passed
    if nbreak > 0:
        # The breakpoints in increasing order from a binary heap, as
        # L-BFGS-B's hpsolb: O(nbreak) to build, O(log n) per breakpoint
        # passed, and usually few are passed (no sort, no allocation).
        for i in range(nbreak // 2 - 1, -1, -1):
            heap_sift_down(tb, ib, i, nbreak)
        tj = 0.0
        while k < nbreak:
            tj0 = tj
            if tb[0] - tj0 > dtm:
                break  # the minimizer lies before the next breakpoint
            tj, b = heap_pop(tb, ib, nbreak - k)
            dt = tj - tj0
            # pass the breakpoint: variable b stops at its bound
            tsum += dt
            k += 1
            dib = dv[b]
            dv[b] = 0.0
            if dib > 0.0:
                zib = ub[b] - x[b]
                xcp[b] = ub[b]
                where[b] = AT_UPPER
            else:
                zib = lb[b] - x[b]
                xcp[b] = lb[b]
                where[b] = AT_LOWER
            if k == nbreak and nbreak == n:
                # every variable is at a bound: that is the point
                dtm = dt
                all_fixed = True
                break
            dib2 = dib * dib
            f1 = f1 + dt * f2 + dib2 - theta * dib * zib
            f2 = f2 - theta * dib2
            if col > 0:
                for j in range(col2):
                    c[j] += dt * p[j]
                for j in range(col):
                    wbp[j] = Y[j, b]
                    wbp[col + j] = theta * S[j, b]
                mid_solve(SY, col, K, dinv, wbp, v)
                wmc = 0.0
                wmp = 0.0
                wmw = 0.0
                for j in range(col2):
                    wmc += c[j] * v[j]
                    wmp += p[j] * v[j]
                    wmw += wbp[j] * v[j]
                for j in range(col2):
                    p[j] -= dib * wbp[j]
                f1 += dib * wmc
                f2 += 2.0 * dib * wmp - dib2 * wmw
            f2 = max(_EPS * f2_org, f2)
            if k < nbreak:
                dtm = -f1 / f2
            elif bounded:
                dtm = 0.0
            else:
                dtm = -f1 / f2
    if not all_fixed:
        if not dtm > 0.0:
            dtm = 0.0
        tsum += dtm
        for i in range(n):
            xcp[i] += tsum * dv[i]
    for j in range(col2):
        c[j] += dtm * p[j]
    if col > 0:
        if k == 0:
            # c = dtm p: M c = dtm (M p), and v holds M p (no breakpoint
            # passed, so no other product overwrote it)
            for j in range(col2):
                v[j] *= dtm
        else:
            mid_solve(SY, col, K, dinv, c, v)
    return math.isfinite(f1) and math.isfinite(f2)


@_jit.borrowing_kernel
def reduced_gradient(x, g, S, Y, col, theta, xcp, v, where, r):
    r"""``r`` = :math:`-(g + B(x^c - x))` on the free variables: the model's
    negative gradient at the Cauchy point (L-BFGS-B's ``cmprlb``), with
    :math:`B(x^c - x) = \theta(x^c - x) - W M c` and ``v`` = :math:`Mc`
    (from :func:`cauchy_point`)."""
    for i in range(x.shape[0]):
        if where[i] != FREE:
            continue
        ri = -theta * (xcp[i] - x[i]) - g[i]
        for j in range(col):
            ri += Y[j, i] * v[j] + theta * S[j, i] * v[col + j]
        r[i] = ri


_reduced_gradient_i = _jit.borrowing_helper(reduced_gradient)


@_jit.borrowing_kernel
def reduced_step(x, g, S, Y, SY, SS, col, theta, Kz, xcp, where, du, v, wv, idx, nfree):
    r"""``du`` = the reduced Newton step from :math:`x^c` over the free variables.

    The direct primal method of Byrd et al. (1995) section 5.1 (L-BFGS-B's
    ``cmprlb``, ``formk`` and ``subsm``): see :func:`subspace_point`.
    ``v`` holds :math:`Mc` (:func:`cauchy_point`) and is then a work array;
    ``idx[:nfree]`` are the free variables.  Returns False when a factor fails.
    """
    n = x.shape[0]
    col2 = 2 * col
    reduced_gradient(x, g, S, Y, col, theta, xcp, v, where, du)
    # wv = W_Z' r and Kz = K - W_Z' W_Z / theta
    for j in range(col2):
        wv[j] = 0.0
    for a in range(col):
        ya = 0.0
        sa = 0.0
        for q in range(nfree):
            i = idx[q]
            ya += Y[a, i] * du[i]
            sa += S[a, i] * du[i]
        wv[a] = ya
        wv[col + a] = theta * sa
        # Kz = [[-P, Q'], [Q, R]]: P = D + Y_Z'Y_Z / theta, Q = L - S_Z'Y_Z,
        # R = theta S_A'S_A (L-BFGS-B's formk), stored as P, Q (full) and the
        # lower triangles of P and R (all the Cholesky factors read)
        for b in range(a + 1):
            yy = 0.0
            sy = 0.0
            ys = 0.0
            ss = 0.0
            for q in range(nfree):
                i = idx[q]
                yy += Y[a, i] * Y[b, i]
                sy += S[a, i] * Y[b, i]
                ys += Y[a, i] * S[b, i]
                ss += S[a, i] * S[b, i]
            Kz[a, b] = (SY[a, a] if a == b else 0.0) + yy / theta
            Kz[col + a, b] = (SY[a, b] if a > b else 0.0) - sy
            Kz[col + b, a] = -ys  # (L)[b, a] = 0 for b <= a
            Kz[col + a, col + b] = theta * (SS[a, b] - ss)
    # Block solve of Kz v = wv: P = Lp Lp', E = R + Q P^-1 Q' = Le Le' (both
    # positive definite), b = E^-1 (v2 + Q P^-1 v1), a = P^-1 (Q' b - v1).
    if not chol_factor(Kz, INT0, col):
        return False
    # Q P^-1 Q' = W'W with W = Lp^-1 Q' (all columns at once, in Kz's unused
    # upper-right block: the inner loops run along rows, and vectorise)
    for i in range(col):
        for j in range(col):
            Kz[i, col + j] = Kz[col + j, i]
        for t in range(i):
            lit = Kz[i, t]
            for j in range(col):
                Kz[i, col + j] -= lit * Kz[t, col + j]
        inv = Kz[i, i]  # 1 / Lp_ii (chol_factor)
        for j in range(col):
            Kz[i, col + j] *= inv
    for t in range(col):
        for i in range(col):
            wti = Kz[t, col + i]
            for j in range(i + 1):
                Kz[col + i, col + j] += wti * Kz[t, col + j]
    if not chol_factor(Kz, col, col):
        return False
    for t in range(col):
        v[t] = wv[t]
    chol_solve(Kz, INT0, col, v, INT0)
    for i in range(col):
        w = wv[col + i]
        for t in range(col):
            w += Kz[col + i, t] * v[t]
        v[col + i] = w
    chol_solve(Kz, col, col, v, col)
    for i in range(col):
        w = -wv[i]
        for t in range(col):
            w += Kz[col + t, i] * v[col + t]
        v[i] = w
    chol_solve(Kz, INT0, col, v, INT0)
    inv = 1.0 / theta
    for i in range(n):
        if where[i] != FREE:
            continue
        w = 0.0
        for j in range(col):
            w += Y[j, i] * v[j] + theta * S[j, i] * v[col + j]
        du[i] = inv * du[i] + inv * inv * w
    return True


_reduced_step_i = _jit.borrowing_helper(reduced_step)


@_jit.borrowing_kernel
def quasi_newton_step(x, g, S, Y, dinv, col, theta, xcp, v, where, du, alpha):
    r"""``du`` = :math:`H r`: the subspace step when every variable is free.

    With no variable fixed at the Cauchy point the subspace problem is the
    whole quadratic model, and its Newton step from :math:`x^c` is
    :math:`B^{-1} r` with :math:`r = -(g + B(x^c - x))`
    (:func:`reduced_gradient`).  :math:`B^{-1} = H`, the L-BFGS inverse
    from the same pairs on :math:`H_0 = I/\theta` (Byrd, Nocedal & Schnabel
    1994): the two-loop recursion (Nocedal & Wright, Algorithm 7.4) applies
    it in :math:`O(mn)` instead of the :math:`O(m^2 n + m^3)` reduced system
    of :func:`reduced_step` (the same step in exact arithmetic).

    The step is taken from :math:`x^c`, as L-BFGS-B takes it, and not as
    the point :math:`x - Hg` it equals in exact arithmetic: on an
    ill-conditioned problem the two round differently, and not at random.
    On the boxed Meyer problem (``benchmarks/many_compare.py``), from
    36 starts perturbed by 1e-15 to 1e-9, ``x - Hg`` stopped on the ftol
    test at the 1.32e5 plateau every time, while scipy's L-BFGS-B got past
    it 18 times and this step 25 times (to f in the thousands;
    ``benchmarks/meyer_rounding.py``).  ``alpha`` (``m``)
    is a work array; the pairs are rows ``0..col-1`` of ``S``, ``Y``, oldest
    first, with :math:`1 / s_j^T y_j` = ``dinv[j]`` (:func:`form_middle`).
    """
    n = x.shape[0]
    _reduced_gradient_i(x, g, S, Y, col, theta, xcp, v, where, du)
    for j in range(col - 1, -1, -1):
        a = 0.0
        for i in range(n):
            a += S[j, i] * du[i]
        a *= dinv[j]
        alpha[j] = a
        for i in range(n):
            du[i] -= a * Y[j, i]
    inv = 1.0 / theta
    for i in range(n):
        du[i] *= inv
    for j in range(col):
        b = 0.0
        for i in range(n):
            b += Y[j, i] * du[i]
        b = alpha[j] - b * dinv[j]
        for i in range(n):
            du[i] += b * S[j, i]


_quasi_newton_step_i = _jit.borrowing_helper(quasi_newton_step)


@_jit.borrowing_kernel
def project_step(x, g, lb, ub, xcp, where, du, z):
    r"""``z`` = the subspace step ``du`` from :math:`x^c` kept in the box.

    Morales & Nocedal (2011): :math:`x^c + d` on the free variables is
    projected on the box; if the projection is not a descent direction from
    ``x``, L-BFGS-B 2.1's step is taken instead (the longest feasible
    fraction of :math:`d`, the variable that limits it set to its bound).
    ``z`` holds :math:`x^c` on entry.
    """
    n = x.shape[0]
    # Morales & Nocedal: project x^c + d on the box
    hit = False
    for i in range(n):
        if where[i] != FREE:
            continue
        zi = xcp[i] + du[i]
        if zi <= lb[i]:
            zi = lb[i]
            hit = True
        elif zi >= ub[i]:
            zi = ub[i]
            hit = True
        z[i] = zi
    if not hit:
        return
    ddp = 0.0
    for i in range(n):
        ddp += (z[i] - x[i]) * g[i]
    if not ddp > 0.0:
        return
    # not a descent direction: the longest feasible step along d from x^c
    for i in range(n):
        z[i] = xcp[i]
    alpha = 1.0
    ibd = -1
    for i in range(n):
        if where[i] != FREE:
            continue
        di = du[i]
        t1 = alpha
        if di < 0.0 and lb[i] > -math.inf:
            t2 = lb[i] - z[i]
            if t2 >= 0.0:
                t1 = 0.0
            elif di * alpha < t2:
                t1 = t2 / di
        elif di > 0.0 and ub[i] < math.inf:
            t2 = ub[i] - z[i]
            if t2 <= 0.0:
                t1 = 0.0
            elif di * alpha > t2:
                t1 = t2 / di
        if t1 < alpha:
            alpha = t1
            ibd = i
    if alpha < 1.0 and ibd >= 0:
        if du[ibd] > 0.0:
            z[ibd] = ub[ibd]
        else:
            z[ibd] = lb[ibd]
        du[ibd] = 0.0
    for i in range(n):
        if where[i] == FREE:
            z[i] += alpha * du[i]


_project_step_i = _jit.borrowing_helper(project_step)


@_jit.borrowing_kernel
def subspace_point(V, I, P, MM, KK, M2, col, theta):
    r"""Minimize the model over the variables free at the Cauchy point; write ``z``.

    Byrd et al. (1995) section 5.1 (direct primal method, L-BFGS-B's
    ``cmprlb`` and ``subsm``): with :math:`Z` the free variables, the reduced
    gradient :math:`r = -Z^T(g + \theta(x^c - x) - W M c)` and the reduced
    matrix :math:`\hat B = \theta I - W_Z M W_Z^T`, the Newton step is
    :math:`\hat d = \hat B^{-1} r`, by Sherman-Morrison-Woodbury

    .. math::

        \hat B^{-1} = \frac1\theta I + \frac1{\theta^2} W_Z
        \left(K - \tfrac1\theta W_Z^T W_Z\right)^{-1} W_Z^T.

    Morales & Nocedal (2011): the point :math:`x^c + \hat d` is projected
    on the box; if the projection is not a descent direction from ``x``,
    L-BFGS-B 2.1's step is taken instead (the longest feasible fraction of
    :math:`\hat d`, the variable that limits it set to its bound;
    :func:`project_step`).
    When every variable is free at the Cauchy point the step is the
    quasi-Newton one, by the two-loop recursion (:func:`quasi_newton_step`,
    the same point in exact arithmetic at a fraction of the cost), else by
    the reduced system (:func:`reduced_step`, in :func:`reduced_subspace_point`).
    ``idx`` (``n`` integers) is a work array (the free variables' indices).

    Returns :data:`SUBSPACE_DONE` with ``z`` written, or
    :data:`SUBSPACE_REDUCED` when some variable but not all is free: the
    caller then calls :func:`reduced_subspace_point` for ``z``.  That is a
    kernel of its own, not called from here, so that a process
    compiles it (about 1.5 s of CPU, a quarter of a cold first bounded
    ``lbfgs`` call) only when a run in the Python loop first needs it; the
    quasi-Newton case, the common one, costs the one call it did.

    The arrays come bundled (:data:`V_ROWS`): the subspace step ``du`` is
    written to ``dv`` (the Cauchy path's direction, no longer needed), ``idx``
    is ``ib``, ``v`` holds :math:`Mc` from :func:`cauchy_point`.
    """
    x, g, lb, ub, xcp, du, z = V[V_X], V[V_G], V[V_LB], V[V_UB], V[V_XCP], V[V_DV], V[V_Z]
    idx, where = I[I_IB], I[I_WHERE]
    S, Y, dinv, v, wv = P[0], P[1], M2[M2_DINV], M2[M2_V], M2[M2_WV]
    n = x.shape[0]
    for i in range(n):
        z[i] = xcp[i]
    nfree = INT0
    for i in range(n):
        if where[i] == FREE:
            idx[nfree] = i
            nfree += 1
    if nfree == 0 or col == 0:
        return SUBSPACE_DONE
    if nfree < n:
        return SUBSPACE_REDUCED
    _quasi_newton_step_i(x, g, S, Y, dinv, col, theta, xcp, v, where, du, wv)
    _project_step_i(x, g, lb, ub, xcp, where, du, z)
    return SUBSPACE_DONE


@_jit.borrowing_kernel
def reduced_subspace_point(V, I, P, MM, KK, M2, col, theta):
    """:func:`subspace_point` when it returned :data:`SUBSPACE_REDUCED`: the
    reduced step (:func:`reduced_step`) over the free variables ``idx``
    (from :func:`subspace_point`), projected (:func:`project_step`) into ``z``.
    Returns False when a factor fails.  Both are inlined: the loop's call of
    this kernel replaces ``subspace_point``'s call of ``reduced_step``, and
    an iteration on this path makes no more calls than it did when it was
    one kernel (a call of ``project_step`` as well made the bounded 10-D
    Rosenbrock of ``benchmarks/many_compare.py`` about 4% slower).  The
    arrays come bundled as :func:`subspace_point`'s."""
    x, g, lb, ub, xcp, du, z = V[V_X], V[V_G], V[V_LB], V[V_UB], V[V_XCP], V[V_DV], V[V_Z]
    idx, where = I[I_IB], I[I_WHERE]
    S, Y, SY, SS, Kz = P[0], P[1], MM[0], MM[1], KK[1]
    v, wv = M2[M2_V], M2[M2_WV]
    nfree = INT0
    for i in range(x.shape[0]):
        if where[i] == FREE:
            nfree += 1
    if not _reduced_step_i(x, g, S, Y, SY, SS, col, theta, Kz, xcp, where, du, v, wv, idx, nfree):
        return False
    _project_step_i(x, g, lb, ub, xcp, where, du, z)
    return True


@_jit.borrowing_kernel
def max_feasible_step(V, big):
    """The largest ``t <= big`` with ``x + t d`` in the box (L-BFGS-B's ``lnsrlb``).

    ``x``, the direction ``d`` and the bounds are rows of ``V`` (:data:`V_ROWS`).
    """
    x, d, lb, ub = V[V_X], V[V_D], V[V_LB], V[V_UB]
    stpmx = big
    for i in range(x.shape[0]):
        di = d[i]
        if di < 0.0 and lb[i] > -math.inf:
            a2 = lb[i] - x[i]
            if a2 >= 0.0:
                stpmx = 0.0
            elif di * stpmx < a2:
                stpmx = a2 / di
        elif di > 0.0 and ub[i] < math.inf:
            a2 = ub[i] - x[i]
            if a2 <= 0.0:
                stpmx = 0.0
            elif di * stpmx > a2:
                stpmx = a2 / di
    return stpmx


@_jit.borrowing_kernel
def bounds_kind(lb, ub):
    """-1: a NaN or ``lb > ub``; 0: no finite bound; 1: some; 2: every side finite."""
    any_finite = False
    all_finite = True
    for i in range(lb.shape[0]):
        lo = lb[i]
        hi = ub[i]
        if math.isnan(lo) or math.isnan(hi) or lo > hi:
            return -1
        a = math.isfinite(lo)
        b = math.isfinite(hi)
        any_finite = any_finite or a or b
        all_finite = all_finite and a and b
    if all_finite:
        return 2
    return 1 if any_finite else 0
