"""Triton forward selective scan, and the pieces the backward shares: one design for every route.

Each route's walk through the tokens is cut into chunks of ``CL`` consecutive route steps. A
program owns ``BLOCK_D`` channels of one batch element and *all* chunks of their sequences; its
tiles are ``(BLOCK_D, RC chunks, G state groups, V steps)`` and a thread owns one (or, for column
routes, ``CPT`` or eight neighbouring) chunks of one channel and ``BLOCK_N // G`` states, so
the recurrence runs inside the thread and only ``y``'s sum over the G state groups crosses lanes:

* routes along the token axis (forward, reverse: Vim, MambaVision, VMamba's rows) walk their
  chunk one 16-byte vector of ``V`` tokens at a time (the backward: 8 bytes);
* column routes (VMamba's col, col_reverse) take chunks of ``CL`` rows of one column of the
  ``H x W`` grid and walk them one row at a time (``V`` = 1); the chunks of neighbouring columns
  sit on neighbouring lanes, so a warp reads whole grid rows (coalesced, no transposed copy).

Inside a vector the recurrence is a sequential loop over the thread's registers (no scan op: no
shuffles and no layout for the compiler to spread over lanes, in Triton 3.6 as in 3.8, and a few
whole-tile operations per step in the interpreter); a reverse route walks its chunk's vectors from
the end and each vector from its last register, so nothing is flipped or scanned in reverse.

The chunks' start states come from a carry pass inside the program: pass 1 reduces every chunk
to the pair (P, S) = (product of its decays, its end state from zero), written to a small fp32
scratch; a two-level fold over it (within segments of ``SS`` chunks, then over the segments)
gives each chunk its start state; pass 2 recomputes the chunk from that state and writes y. So
the forward saves nothing for the backward (it recomputes), and short sequences still spread over
many lanes. Merged routes run one after another in the program and add up in route order
(deterministic, no atomics).
"""
import triton
import triton.language as tl
# tl.sum's own combine: the interpreter sums with numpy for it (and tl.sum is a nested jit call,
# which the interpreter pays for with a re-patch of triton.language each time)
from triton.language.standard import _sum_combine as add

LOG2E = tl.constexpr(1.4426950408889634)


@triton.jit
def walk(a, b, h, v4, REV: tl.constexpr, V: tl.constexpr):
    """The recurrence h_t = a_t h_{t-1} + b_t over a vector in route order (a reverse route from
    its last token), from ``h`` (D, RC, G, 1): the decay products from the vector's start and the
    states, both (D, RC, G, V) in token order, and the state and decay product at its end. A
    sequential in-register loop: no shuffles, no flips. Small helpers are written inline in this
    file's loops: the interpreter re-patches triton.language on every nested jit call."""
    pa = tl.zeros_like(a)
    hs = tl.zeros_like(a)
    p = tl.full(h.shape, 1.0, tl.float32)
    for i in tl.static_range(V):
        t = V - 1 - i if REV else i
        at = tl.reduce(tl.where(v4 == t, a, 0.0), 3, add, keep_dims=True)
        h = at * h + tl.reduce(tl.where(v4 == t, b, 0.0), 3, add, keep_dims=True)
        p = p * at
        hs = tl.where(v4 == t, h, hs)
        pa = tl.where(v4 == t, p, pa)
    return pa, hs, h, p


@triton.jit
def tokens(r, q, v, L, REV: tl.constexpr, COL: tl.constexpr, CL: tl.constexpr,
           V: tl.constexpr, NB: tl.constexpr, W: tl.constexpr, CPT: tl.constexpr,
           TAIL: tl.constexpr):
    """Token index and validity of element ``v`` of walk iteration ``q`` of chunk row ``r``; a
    column route's chunk rows are ``(row block, column)``, columns fastest. A row's walk covers
    its whole vectors only: a mask against the runtime length would vary inside a vector and
    forbid vector loads. ``TAIL``: the row's partial last vector instead (``q`` unused), walked
    apart, after the chunk's vectors along a forward route and before them along a reverse."""
    NQ: tl.constexpr = CL // V
    m = (NQ - 1 - q) if REV else q
    whole = (L // V) * V  # a multiple of V, as the compiler sees: masks constant over a vector
    if TAIL:
        tok = whole + v + r * 0
        ok = (tok < L) & (r == whole // CL)
    elif COL:
        if CPT > 0:
            # the same r, written so that the compiler sees runs of CPT neighbouring columns
            # only (not a whole 16-byte vector): a thread then walks CPT of them side by side
            r = r % CPT + (r // CPT) * CPT
        tok = ((r // W) * CL + m) * W + r % W + v
        ok = (r < NB * W) & (v == 0)
    else:
        tok = r * CL + m * V + v
        ok = tok < whole
    return tok, ok


@triton.jit
def chunk_order(r, REV: tl.constexpr, COL: tl.constexpr, RC: tl.constexpr, NB: tl.constexpr,
                W: tl.constexpr):
    """The place of chunk row ``r`` along its route (padding rows last when walking forward)."""
    c = r
    if COL:
        c = tl.where(r < NB * W, (r % W) * NB + r // W, r)
    if REV:
        c = RC - 1 - c
    return c


@triton.jit
def delta_tile(d_ptrs, ok, bias, SOFTPLUS: tl.constexpr):
    """(delta + bias, dt): dt is 0 at steps past the end (decay 1, input 0: the state holds)."""
    x = tl.load(d_ptrs, mask=ok, other=0.0).to(tl.float32) + bias
    dt = x
    if SOFTPLUS:
        dt = tl.where(x > 20.0, x, tl.log(1.0 + tl.exp(x)))
    return x, tl.where(ok, dt, 0.0)


@triton.jit
def fold_segment(sums, c, P_own, X_own, X_ARR: tl.constexpr, TOT: tl.constexpr,
                 BACKWARDS: tl.constexpr, RC: tl.constexpr, SS: tl.constexpr,
                 BLOCK_N: tl.constexpr):
    """Level 1 of the carry fold: the map (Pw, Xw) of the chunks before chunk ``c`` in its
    segment of ``SS`` chunks (``BACKWARDS``: from the route's end), from summaries
    ``P = sums[0:RC]`` and ``X = sums[X_ARR * RC:]``; the segment's last chunk writes the segment's
    map to the totals ``TOT``, ``TOT + 1``."""
    NSP: tl.constexpr = RC // SS
    o = (RC - 1 - c) if BACKWARDS else c
    seg = o // SS
    pos = o % SS
    Pw = tl.full(P_own.shape, 1.0, tl.float32)
    Xw = tl.zeros(X_own.shape, tl.float32)
    for i in range(SS):
        oi = seg * SS + i
        ci = (RC - 1 - oi) if BACKWARDS else oi
        Pi = tl.load(sums + ci * BLOCK_N)
        Xi = tl.load(sums + (X_ARR * RC + ci) * BLOCK_N)
        before = i < pos
        Xw = tl.where(before, Pi * Xw + Xi, Xw)
        Pw = tl.where(before, Pi * Pw, Pw)
    end = pos == SS - 1
    tot = sums + (3 * RC + TOT * NSP + seg) * BLOCK_N
    tl.store(tot, P_own * Pw, mask=end)
    tl.store(tot + NSP * BLOCK_N, P_own * Xw + X_own, mask=end)
    return Pw, Xw


@triton.jit
def fold_segments(sums, c, Pw, Xw, start, TOT: tl.constexpr, BACKWARDS: tl.constexpr,
                  RC: tl.constexpr, SS: tl.constexpr, BLOCK_N: tl.constexpr):
    """Level 2: fold the totals of the earlier segments onto ``start``, then apply (Pw, Xw)."""
    NSP: tl.constexpr = RC // SS
    o = (RC - 1 - c) if BACKWARDS else c
    seg = o // SS
    h = start + tl.zeros(Xw.shape, tl.float32)
    for s in range(NSP):
        Ps = tl.load(sums + (3 * RC + TOT * NSP + s) * BLOCK_N)
        Xs = tl.load(sums + (3 * RC + (TOT + 1) * NSP + s) * BLOCK_N)
        h = tl.where(s < seg, Ps * h + Xs, h)
    return Pw * h + Xw


@triton.jit
def summary_step(h, P, Q, tok, ok, u_row, d_row, z_row, do_row, B_row, C_row, su_l, sd_l, sz_l,
                 sdo_l, sB_l, sC_l, sB_n, sC_n, N, A2, bias, dout_scale, g4, j4, v4,
                 REV: tl.constexpr, ADJOINT: tl.constexpr, HAS_Z: tl.constexpr,
                 SOFTPLUS: tl.constexpr, NG: tl.constexpr, V: tl.constexpr):
    """One walk iteration of pass 1: the chunk's end state from zero ``h`` and decay product
    ``P``, and with ``ADJOINT`` ``Q = sum_t (a_0 .. a_t) C_t dy_t``, the adjoint the chunk passes
    to the one before it when nothing arrives from after it."""
    u = tl.load(u_row + tok * su_l, mask=ok, other=0.0).to(tl.float32)
    _, dt = delta_tile(d_row + tok * sd_l, ok, bias, SOFTPLUS)
    dtu = dt * u
    if ADJOINT:
        dy = tl.load(do_row + tok * sdo_l, mask=ok, other=0.0).to(tl.float32) * dout_scale
        if HAS_Z:
            zt = tl.load(z_row + tok * sz_l, mask=ok, other=0.0).to(tl.float32)
            dy = dy * zt * tl.sigmoid(zt)
    for j in tl.static_range(NG):
        pick = j4 == j
        n = g4 * NG + j
        m = (n < N) & ok
        Bj = tl.load(B_row + n * sB_n + tok * sB_l, mask=m, other=0.0).to(tl.float32)
        Pj = tl.reduce(tl.where(pick, P, 0.0), 3, add, keep_dims=True)
        A2j = tl.reduce(tl.where(pick, A2, 0.0), 3, add, keep_dims=True)
        hj = tl.reduce(tl.where(pick, h, 0.0), 3, add, keep_dims=True)
        pa, _, hj, pj = walk(tl.exp2(dt * A2j), dtu * Bj, hj, v4, REV, V)
        if ADJOINT:
            Cj = tl.load(C_row + n * sC_n + tok * sC_l, mask=m, other=0.0).to(tl.float32)
            Q = tl.where(pick, Q + Pj * tl.sum(pa * Cj * dy, 3)[:, :, :, None], Q)
        h = tl.where(pick, hj, h)
        P = tl.where(pick, Pj * pj, P)
    return h, P, Q


@triton.jit
def output_step(h, tok, ok, at, ok3, u_row, d_row, z_row, B_row, C_row, su_l, sd_l, sz_l, sB_l,
                sC_l, sB_n, sC_n, N, A2, Dp, bias, out_scale, first_g, g4, j4, v4, out_ptr,
                acc_ptr, REV: tl.constexpr, FIRST: tl.constexpr, LAST: tl.constexpr,
                HAS_Z: tl.constexpr, SOFTPLUS: tl.constexpr, NG: tl.constexpr,
                V: tl.constexpr):
    """One walk iteration of pass 2: the states from ``h`` and y, added to what earlier routes
    left in ``acc_ptr`` unless ``FIRST``, stored to ``out_ptr`` when ``LAST``."""
    u = tl.load(u_row + tok * su_l, mask=ok, other=0.0).to(tl.float32)
    _, dt = delta_tile(d_row + tok * sd_l, ok, bias, SOFTPLUS)
    dtu = dt * u
    y = Dp * u * first_g  # D u, counted on one group's lanes
    for j in tl.static_range(NG):
        pick = j4 == j
        n = g4 * NG + j
        m = (n < N) & ok
        Bj = tl.load(B_row + n * sB_n + tok * sB_l, mask=m, other=0.0).to(tl.float32)
        Cj = tl.load(C_row + n * sC_n + tok * sC_l, mask=m, other=0.0).to(tl.float32)
        A2j = tl.reduce(tl.where(pick, A2, 0.0), 3, add, keep_dims=True)
        hj = tl.reduce(tl.where(pick, h, 0.0), 3, add, keep_dims=True)
        _, hs, hj, _ = walk(tl.exp2(dt * A2j), dtu * Bj, hj, v4, REV, V)
        h = tl.where(pick, hj, h)
        y += hs * Cj
    if HAS_Z:
        zt = tl.load(z_row + tok * sz_l, mask=ok, other=0.0).to(tl.float32)
        y = y * zt * tl.sigmoid(zt)
    merge_store(acc_ptr + at, out_ptr + at, tl.sum(y, 2) * out_scale, ok3, FIRST, LAST)
    return h


@triton.jit
def merge_store(acc_ptrs, out_ptrs, x, mask, FIRST: tl.constexpr, LAST: tl.constexpr):
    """Add to what the previous routes left (fp32 in ``acc_ptrs``); the last stores the total."""
    if not FIRST:
        x += tl.load(acc_ptrs, mask=mask, other=0.0)
    if LAST:
        tl.store(out_ptrs, x.to(out_ptrs.dtype.element_ty), mask=mask)
    else:
        tl.store(acc_ptrs, x.to(acc_ptrs.dtype.element_ty), mask=mask)


@triton.jit
def route_setup(b, k, d0, dim, total, cpg, N, sums_w, ins, sums_ptr, REV: tl.constexpr,
                COL: tl.constexpr, U_SHARED: tl.constexpr, Z_SHARED: tl.constexpr,
                HAS_D: tl.constexpr, HAS_BIAS: tl.constexpr, BLOCK_D: tl.constexpr,
                BLOCK_N: tl.constexpr, G: tl.constexpr, V: tl.constexpr, RC: tl.constexpr,
                NB: tl.constexpr, W: tl.constexpr):
    """What a route's program sets up once: its channels' rows of u, delta, z (broadcast over the
    state groups), its group's B and C rows (broadcast over channels), A (D, 1, G, NG), D and
    the bias (D, 1, 1, 1), the index tensors, each chunk row's place along the route and its
    summaries' scratch, and the strides along the walk. ``ins``: the kernels' leading
    arguments, the inputs' pointers and strides."""
    (u_ptr, su_b, su_c, su_l, d_ptr, sd_b, sd_c, sd_l, z_ptr, sz_b, sz_c, sz_l, B_ptr, sB_b, sB_g,
     sB_n, sB_l, C_ptr, sC_b, sC_g, sC_n, sC_l, A_ptr, D_ptr, bias_ptr) = ins
    NG: tl.constexpr = BLOCK_N // G
    offs_d = d0 + tl.arange(0, BLOCK_D)
    d4 = offs_d[:, None, None, None]
    c4 = k * dim + d4
    g4 = tl.arange(0, G)[None, None, :, None]
    n4 = g4 * NG + tl.arange(0, NG)[None, None, None, :]
    A = tl.load(A_ptr + c4 * N + n4, mask=n4 < N, other=0.0)
    if HAS_D:
        Dp = tl.load(D_ptr + c4)
    else:
        Dp = tl.zeros([BLOCK_D, 1, 1, 1], tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + c4)
    else:
        bias = tl.zeros([BLOCK_D, 1, 1, 1], tl.float32)
    g0 = g4 * 0  # the stride-0 group axis: without it Triton puts lanes on the step axis
    u_row = u_ptr + b * su_b + (d4 if U_SHARED else c4) * su_c + g0
    z_row = z_ptr + b * sz_b + (d4 if Z_SHARED else c4) * sz_c + g0
    d_row = d_ptr + b * sd_b + c4 * sd_c + g0
    grp = (k * dim + d0) // cpg
    B_row = B_ptr + b * sB_b + grp * sB_g + d4 * 0
    C_row = C_ptr + b * sC_b + grp * sC_g + d4 * 0
    j4 = tl.arange(0, NG)[None, None, None, :]
    v4 = tl.arange(0, V)[None, None, None, :]
    r4 = tl.arange(0, RC)[None, :, None, None]
    c = chunk_order(r4, REV, COL, RC, NB, W)
    sums = sums_ptr + (b * total + c4) * sums_w * BLOCK_N + n4
    return (d4, c4, g4, n4, j4, v4, r4, c, sums, A, A * LOG2E, Dp, bias, u_row, z_row, d_row,
            B_row, C_row, (g4 == 0).to(tl.float32), su_l, sd_l, sz_l, sB_l, sC_l, sB_n, sC_n)


@triton.jit
def each_route(ROUTE: tl.constexpr, ins, outs, L, dim, cpg, N, sums_w, sums_ptr,
               K: tl.constexpr, ROUTES: tl.constexpr, SERIAL: tl.constexpr,
               MERGED: tl.constexpr, U_SHARED: tl.constexpr, Z_SHARED: tl.constexpr,
               HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
               SOFTPLUS: tl.constexpr, FLAG: tl.constexpr, BLOCK_D: tl.constexpr,
               BLOCK_N: tl.constexpr, G: tl.constexpr, V: tl.constexpr, RC_R: tl.constexpr,
               CL_R: tl.constexpr, SS_R: tl.constexpr, RC_C: tl.constexpr, CL_C: tl.constexpr,
               SS_C: tl.constexpr, NB: tl.constexpr, CPT: tl.constexpr, W: tl.constexpr,
               TAIL_R: tl.constexpr):
    """Both kernels' program: its routes, each set up by :func:`route_setup` and run by
    ``ROUTE`` (:func:`_fwd_route`, :func:`.triton_bwd._bwd_route`) with ``outs``, the kernel's
    own arguments, and ``FLAG``, its own constexpr. Grid (dim // BLOCK_D, batch, 1 if SERIAL
    else K): channel blocks first, so programs that run side by side share a batch element's B
    and C rows. ``ROUTES`` packs the route codes (:data:`kernels.paths.ROUTE_CODES`) two bits
    each; row routes use chunk geometry (RC_R rows, CL_R steps, SS_R per fold segment, TAIL_R 1
    where L is no whole number of vectors), column routes (RC_C, CL_C, SS_C) with NB chunks per
    column. ``sums_ptr``: fp32 scratch of ``sums_w * BLOCK_N`` per (batch, channel)."""
    d0 = tl.program_id(0) * BLOCK_D
    b = tl.program_id(1)
    for k in tl.static_range(K):
        if (tl.program_id(2) == k) | SERIAL:
            REV: tl.constexpr = (ROUTES >> (2 * k)) & 1
            COL: tl.constexpr = (ROUTES >> (2 * k)) & 2
            VK: tl.constexpr = 1 if COL else V
            RC: tl.constexpr = RC_C if COL else RC_R
            setup = route_setup(b, k, d0, dim, K * dim, cpg, N, sums_w, ins, sums_ptr, REV, COL,
                                U_SHARED, Z_SHARED, HAS_D, HAS_BIAS, BLOCK_D, BLOCK_N, G, VK, RC,
                                NB, W)
            ROUTE(setup, outs, b, k, d0, L, dim, K * dim, cpg, N, sums_w, sums_ptr, REV, COL,
                  k == 0, k == K - 1, MERGED, U_SHARED, Z_SHARED, HAS_D, HAS_Z, HAS_BIAS,
                  SOFTPLUS, FLAG, BLOCK_D, BLOCK_N, G, VK, RC, CL_C if COL else CL_R, NB, W,
                  SS_C if COL else SS_R, CPT, 0 if COL else TAIL_R)
        if SERIAL:
            # the next route reads what this one stored (its output, or the u/z gradients),
            # from other threads
            tl.debug_barrier()


@triton.jit
def _fwd_route(setup, outs, b, k, d0, L, dim, total, cpg, N, sums_w, sums_ptr,
               REV: tl.constexpr, COL: tl.constexpr, K_FIRST: tl.constexpr,
               K_LAST: tl.constexpr, MERGED: tl.constexpr, U_SHARED: tl.constexpr,
               Z_SHARED: tl.constexpr, HAS_D: tl.constexpr, HAS_Z: tl.constexpr,
               HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, FLAG: tl.constexpr,
               BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, G: tl.constexpr, V: tl.constexpr,
               RC: tl.constexpr, CL: tl.constexpr, NB: tl.constexpr, W: tl.constexpr,
               SS: tl.constexpr, CPT: tl.constexpr, TAIL_N: tl.constexpr):
    NG: tl.constexpr = BLOCK_N // G
    NQ: tl.constexpr = CL // V
    (d4, c4, g4, n4, j4, v4, r4, c, sums, A, A2, Dp, bias, u_row, z_row, d_row, B_row, C_row,
     first_g, su_l, sd_l, sz_l, sB_l, sC_l, sB_n, sC_n) = setup
    out_ptr, acc_ptr, last_ptr, out_scale = outs
    # unmerged routes each write their own output block
    FIRST: tl.constexpr = K_FIRST | (MERGED == 0)
    LAST: tl.constexpr = K_LAST | (MERGED == 0)
    r3 = tl.arange(0, RC)[None, :, None]
    v3 = tl.arange(0, V)[None, None, :]
    d3 = d0 + tl.arange(0, BLOCK_D)[:, None, None]
    row = (b * (dim if MERGED else total) + (d3 if MERGED else k * dim + d3)) * L
    # pass 1: each chunk's (decay product, end state from zero); a walk through the tokens is
    # its whole vectors and (TAIL_N: 1) a row's partial last vector apart (:func:`tokens`)
    h = tl.zeros([BLOCK_D, RC, G, NG], tl.float32)
    P = tl.full([BLOCK_D, RC, G, NG], 1.0, tl.float32)
    for part in tl.static_range(2):
        TAIL = part == (0 if REV else 1)
        for q in range(TAIL_N if TAIL else NQ):
            tok, ok = tokens(r4, q, v4, L, REV, COL, CL, V, NB, W, CPT, TAIL)
            h, P, _ = summary_step(h, P, h, tok, ok, u_row, d_row, z_row, u_row, B_row, C_row,
                                   su_l, sd_l, sz_l, su_l, sB_l, sC_l, sB_n, sC_n, N, A2, bias,
                                   1.0, g4, j4, v4, REV, False, HAS_Z, SOFTPLUS, NG, V)
    tl.store(sums + c * BLOCK_N, P)
    tl.store(sums + (RC + c) * BLOCK_N, h)
    tl.debug_barrier()
    Pw, Sw = fold_segment(sums, c, P, h, 1, 0, False, RC, SS, BLOCK_N)
    tl.debug_barrier()
    h = fold_segments(sums, c, Pw, Sw, 0.0, 0, False, RC, SS, BLOCK_N)
    # pass 2: outputs from each chunk's start state
    for part in tl.static_range(2):
        TAIL = part == (0 if REV else 1)
        for q in range(TAIL_N if TAIL else NQ):
            tok, ok = tokens(r4, q, v4, L, REV, COL, CL, V, NB, W, CPT, TAIL)
            tok3, ok3 = tokens(r3, q, v3, L, REV, COL, CL, V, NB, W, CPT, TAIL)
            h = output_step(h, tok, ok, row + tok3, ok3, u_row, d_row, z_row, B_row, C_row,
                            su_l, sd_l, sz_l, sB_l, sC_l, sB_n, sC_n, N, A2, Dp, bias, out_scale,
                            first_g, g4, j4, v4, out_ptr, acc_ptr, REV, FIRST, LAST, HAS_Z,
                            SOFTPLUS, NG, V)
    # the route's last chunk (padding chunks after it hold the state) ends in the last state
    tl.store(last_ptr + (b * total + c4) * N + n4 + c * 0, h, mask=(n4 < N) & (c == RC - 1))


@triton.jit
def scan_fwd_kernel(u_ptr, su_b, su_c, su_l, d_ptr, sd_b, sd_c, sd_l, z_ptr, sz_b, sz_c, sz_l,
                    B_ptr, sB_b, sB_g, sB_n, sB_l, C_ptr, sC_b, sC_g, sC_n, sC_l,
                    A_ptr, D_ptr, bias_ptr, out_ptr, acc_ptr, sums_ptr, last_ptr,
                    L, dim, cpg, N, sums_w, out_scale,
                    K: tl.constexpr, ROUTES: tl.constexpr, SERIAL: tl.constexpr,
                    MERGED: tl.constexpr, U_SHARED: tl.constexpr, Z_SHARED: tl.constexpr,
                    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
                    SOFTPLUS: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
                    G: tl.constexpr, V: tl.constexpr, RC_R: tl.constexpr, CL_R: tl.constexpr,
                    SS_R: tl.constexpr, RC_C: tl.constexpr, CL_C: tl.constexpr,
                    SS_C: tl.constexpr, NB: tl.constexpr, CPT: tl.constexpr, W: tl.constexpr,
                    TAIL_R: tl.constexpr):
    """The forward: see :func:`each_route`."""
    each_route(_fwd_route, (u_ptr, su_b, su_c, su_l, d_ptr, sd_b, sd_c, sd_l, z_ptr, sz_b, sz_c,
                            sz_l, B_ptr, sB_b, sB_g, sB_n, sB_l, C_ptr, sC_b, sC_g, sC_n, sC_l,
                            A_ptr, D_ptr, bias_ptr),
               (out_ptr, acc_ptr, last_ptr, out_scale), L, dim, cpg, N, sums_w, sums_ptr, K,
               ROUTES, SERIAL, MERGED, U_SHARED, Z_SHARED, HAS_D, HAS_Z, HAS_BIAS, SOFTPLUS, 0,
               BLOCK_D, BLOCK_N, G, V, RC_R, CL_R, SS_R, RC_C, CL_C, SS_C, NB, CPT, W, TAIL_R)
