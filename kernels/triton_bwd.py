"""Triton backward selective scan, in the forward's layout and chunks (:mod:`.triton_fwd`).

Per route, one program recomputes what the forward did not save:

1. pass 1 walks each chunk once and reduces it to its decay product P, its end state from zero
   S and its adjoint from zero Q = sum_t (a_0 .. a_t) C_t dy_t (what it hands to the chunk before
   it when nothing arrives from after it);
2. two folds over the chunks (forwards over (P, S), backwards over (P, Q) from the last state's
   gradient) give every chunk its start state and the adjoint arriving at its end;
3. pass 2 walks each chunk forwards from its start state and writes the state entering each
   walk iteration to an fp32 scratch (the thread reads back only what it wrote);
4. pass 3 walks each chunk backwards: per vector the states again from the scratch, then the
   adjoint ``dh_t = C_t dy_t + a_{t+1} dh_{t+1}`` as a sequential in-register loop backwards
   along the route that carries ``e = a_{t+1} dh_{t+1}`` (so ``a_{t+1}`` needs no shifted load,
   no shuffle and no flip).

Nothing is added up with atomics: dB and dC are summed over the program's channels and written
per (batch, channel block); dA, dD and delta_bias per (batch, channel); routes that share u or z
add their gradients in route order in one program. The launcher sums the partials in fixed order.
"""
import triton
import triton.language as tl

from .triton_fwd import (add, delta_tile, each_route, fold_segment, fold_segments, merge_store,
                         summary_step, tokens, walk)


@triton.jit
def adjoint_walk(a, c, e, v4, REV: tl.constexpr, V: tl.constexpr):
    """The adjoint dh_t = c_t + a_{t+1} dh_{t+1} over a vector, backwards along the route, from
    ``e`` = a_{t+1} dh_{t+1} arriving from the route's later steps: dh (token order) and the ``e``
    it passes on. A sequential in-register loop, as :func:`.triton_fwd.walk`."""
    dh = tl.zeros_like(c)
    for i in tl.static_range(V):
        t = i if REV else V - 1 - i
        d = tl.reduce(tl.where(v4 == t, c, 0.0), 3, add, keep_dims=True) + e
        dh = tl.where(v4 == t, d, dh)
        e = tl.reduce(tl.where(v4 == t, a, 0.0), 3, add, keep_dims=True) * d
    return dh, e


@triton.jit
def states_step(h, slot_ptrs, tok, ok, u_row, d_row, B_row, su_l, sd_l, sB_l, sB_n, N, A2, bias,
                g4, j4, v4, REV: tl.constexpr, SOFTPLUS: tl.constexpr, NG: tl.constexpr,
                V: tl.constexpr):
    """Pass 2: store the state entering this walk iteration, return the one leaving it."""
    tl.store(slot_ptrs, h)
    u = tl.load(u_row + tok * su_l, mask=ok, other=0.0).to(tl.float32)
    _, dt = delta_tile(d_row + tok * sd_l, ok, bias, SOFTPLUS)
    dtu = dt * u
    for j in tl.static_range(NG):
        pick = j4 == j
        n = g4 * NG + j
        Bj = tl.load(B_row + n * sB_n + tok * sB_l, mask=(n < N) & ok, other=0.0).to(tl.float32)
        A2j = tl.reduce(tl.where(pick, A2, 0.0), 3, add, keep_dims=True)
        hj = tl.reduce(tl.where(pick, h, 0.0), 3, add, keep_dims=True)
        _, _, hj, _ = walk(tl.exp2(dt * A2j), dtu * Bj, hj, v4, REV, V)
        h = tl.where(pick, hj, h)
    return h


@triton.jit
def grad_step(e, dA, dD, dbias, h0, tok, ok, tok3, ok3, bc, ok_bc, u_row, d_row, z_row, do_row,
              B_row, C_row, su_l, sd_l, sz_l, sdo_l, sB_l, sC_l, sB_n, sC_n, L, N, A, A2, Dp, bias,
              dout_scale, first_g, g4, j4, v4, g3, u_at, z_at, dd_at, du_ptr, du_acc_ptr,
              ddelta_ptr, dz_ptr, dz_acc_ptr, dB_ptr, dC_ptr, REV: tl.constexpr,
              U_FIRST: tl.constexpr, U_LAST: tl.constexpr, Z_FIRST: tl.constexpr,
              Z_LAST: tl.constexpr, HAS_Z: tl.constexpr, SOFTPLUS: tl.constexpr,
              NG: tl.constexpr, V: tl.constexpr):
    """Pass 3, one walk iteration from its entry state ``h0``; ``e`` (D, RC, G, NG) is the
    propagated adjoint arriving from the later route steps."""
    u = tl.load(u_row + tok * su_l, mask=ok, other=0.0).to(tl.float32)
    _, dt = delta_tile(d_row + tok * sd_l, ok, bias, SOFTPLUS)
    dy = tl.load(do_row + tok * sdo_l, mask=ok, other=0.0).to(tl.float32) * dout_scale
    dtu = dt * u
    dyg = dy
    if HAS_Z:
        zt = tl.load(z_row + tok * sz_l, mask=ok, other=0.0).to(tl.float32)
        sig = tl.sigmoid(zt)
        dyg = dy * zt * sig
        # dz = dgate * y: the same on every group's lanes, so each scales its own part of y and
        # one sum over the groups gives dz (dy, z and sig are not held through the states)
        dgate = dy * sig * (1.0 + zt * (1.0 - sig))
        y = Dp * u * first_g
    ddt = tl.zeros_like(dtu)
    du = Dp * dyg * first_g
    for j in tl.static_range(NG):
        pick = j4 == j
        n = g4 * NG + j
        m = (n < N) & ok
        Bj = tl.load(B_row + n * sB_n + tok * sB_l, mask=m, other=0.0).to(tl.float32)
        Cj = tl.load(C_row + n * sC_n + tok * sC_l, mask=m, other=0.0).to(tl.float32)
        Aj = tl.reduce(tl.where(pick, A, 0.0), 3, add, keep_dims=True)
        a = tl.exp2(dt * tl.reduce(tl.where(pick, A2, 0.0), 3, add, keep_dims=True))
        bb = dtu * Bj
        _, hs, _, _ = walk(a, bb, tl.reduce(tl.where(pick, h0, 0.0), 3, add, keep_dims=True),
                           v4, REV, V)
        if HAS_Z:
            y += hs * Cj
        ej = tl.reduce(tl.where(pick, e, 0.0), 3, add, keep_dims=True)
        dh, ej = adjoint_walk(a, Cj * dyg, ej, v4, REV, V)
        e = tl.where(pick, ej, e)
        dhhb = dh * (hs - bb)  # a_t h_{t-1} = h_t - b_t
        ddt += dhhb * Aj + dh * Bj * u
        du += dh * Bj * dt
        dA = tl.where(pick, dA + tl.sum(dhhb * dt, 3)[:, :, :, None], dA)
        nb = g3 * NG + j
        # (RC, G, V): summed over this program's channels
        tl.store(dB_ptr + bc + nb * L, tl.sum(dh * dtu, 0), mask=ok_bc & (nb < N))
        tl.store(dC_ptr + bc + nb * L, tl.sum(dyg * hs, 0), mask=ok_bc & (nb < N))
    if SOFTPLUS:
        # delta read again rather than held through the states (registers)
        x, _ = delta_tile(d_row + tok * sd_l, ok, bias, False)
        ddt = ddt * tl.sigmoid(x)
    ddt = tl.sum(tl.where(ok, ddt, 0.0), 2)  # (D, RC, V)
    # summed inside the thread, over the lanes once at the end: few registers, no shuffles
    dD += tl.sum(dyg * u, 3)
    dbias += tl.sum(ddt, 2)
    tl.store(ddelta_ptr + dd_at + tok3, ddt.to(ddelta_ptr.dtype.element_ty), mask=ok3)
    merge_store(du_acc_ptr + u_at + tok3, du_ptr + u_at + tok3, tl.sum(du, 2), ok3, U_FIRST,
                U_LAST)
    if HAS_Z:
        dz = tl.sum(y * dgate, 2)
        merge_store(dz_acc_ptr + z_at + tok3, dz_ptr + z_at + tok3, dz, ok3, Z_FIRST, Z_LAST)
    return e, dA, dD, dbias


@triton.jit
def _bwd_route(setup, outs, b, k, d0, L, dim, total, cpg, N, sums_w, sums_ptr,
               REV: tl.constexpr, COL: tl.constexpr, K_FIRST: tl.constexpr,
               K_LAST: tl.constexpr, MERGED: tl.constexpr, U_SHARED: tl.constexpr,
               Z_SHARED: tl.constexpr, HAS_D: tl.constexpr, HAS_Z: tl.constexpr,
               HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, HAS_DLAST: tl.constexpr,
               BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, G: tl.constexpr, V: tl.constexpr,
               RC: tl.constexpr, CL: tl.constexpr, NB: tl.constexpr, W: tl.constexpr,
               SS: tl.constexpr, CPT: tl.constexpr, TAIL_N: tl.constexpr):
    NG: tl.constexpr = BLOCK_N // G
    NQ: tl.constexpr = CL // V
    (d4, c4, g4, n4, j4, v4, r4, c, sums, A, A2, Dp, bias, u_row, z_row, d_row, B_row, C_row,
     first_g, su_l, sd_l, sz_l, sB_l, sC_l, sB_n, sC_n) = setup
    (states_ptr, dout_ptr, sdo_b, sdo_c, sdo_l, dlast_ptr, du_ptr, du_acc_ptr, ddelta_ptr, dz_ptr,
     dz_acc_ptr, dB_ptr, dC_ptr, dA_ptr, dD_ptr, dbias_ptr, slots, dout_scale) = outs
    do_row = dout_ptr + b * sdo_b + (d4 if MERGED else c4) * sdo_c + g4 * 0
    r3 = tl.arange(0, RC)[None, :, None]
    v3 = tl.arange(0, V)[None, None, :]
    rb = tl.arange(0, RC)[:, None, None]
    g3 = tl.arange(0, G)[None, :, None]
    # gradients come back contiguous: rows of L
    d3 = d0 + tl.arange(0, BLOCK_D)[:, None, None]
    ch3 = k * dim + d3
    u_at = (b * (dim if U_SHARED else total) + (d3 if U_SHARED else ch3)) * L
    z_at = (b * (dim if Z_SHARED else total) + (d3 if Z_SHARED else ch3)) * L
    dd_at = (b * total + ch3) * L
    bc_at = (b * (total // BLOCK_D) + (k * dim + d0) // BLOCK_D) * N * L
    # pass 1 and the folds: each chunk's start state and the adjoint arriving at its end
    h = tl.zeros([BLOCK_D, RC, G, BLOCK_N // G], tl.float32)
    P = tl.full(h.shape, 1.0, tl.float32)
    Q = tl.zeros(h.shape, tl.float32)
    for part in tl.static_range(2):  # whole vectors, a row's partial last one apart (tokens)
        TAIL = part == (0 if REV else 1)
        for q in range(TAIL_N if TAIL else NQ):
            tok, ok = tokens(r4, q, v4, L, REV, COL, CL, V, NB, W, CPT, TAIL)
            h, P, Q = summary_step(h, P, Q, tok, ok, u_row, d_row, z_row, do_row, B_row, C_row,
                                   su_l, sd_l, sz_l, sdo_l, sB_l, sC_l, sB_n, sC_n, N, A2, bias,
                                   dout_scale, g4, j4, v4, REV, True, HAS_Z, SOFTPLUS, NG, V)
    tl.store(sums + c * BLOCK_N, P)
    tl.store(sums + (RC + c) * BLOCK_N, h)
    tl.store(sums + (2 * RC + c) * BLOCK_N, Q)
    tl.debug_barrier()
    Pw, Sw = fold_segment(sums, c, P, h, 1, 0, False, RC, SS, BLOCK_N)
    Pv, Qv = fold_segment(sums, c, P, Q, 2, 2, True, RC, SS, BLOCK_N)
    tl.debug_barrier()
    h = fold_segments(sums, c, Pw, Sw, 0.0, 0, False, RC, SS, BLOCK_N)
    if HAS_DLAST:
        dlast = tl.load(dlast_ptr + (b * total + c4) * N + n4, mask=n4 < N, other=0.0)
    else:
        dlast = tl.zeros([BLOCK_D, 1, G, BLOCK_N // G], tl.float32)
    e = fold_segments(sums, c, Pv, Qv, dlast, 2, True, RC, SS, BLOCK_N)
    # pass 2: the state entering each walk iteration (the partial last vector's in slot NQ)
    slot = states_ptr + (b * total + c4) * slots * BLOCK_N + n4 + r4 * ((NQ + TAIL_N) * BLOCK_N)
    for part in tl.static_range(2):
        TAIL = part == (0 if REV else 1)
        for q in range(TAIL_N if TAIL else NQ):
            tok, ok = tokens(r4, q, v4, L, REV, COL, CL, V, NB, W, CPT, TAIL)
            h = states_step(h, slot + (NQ if TAIL else q) * BLOCK_N, tok, ok, u_row, d_row,
                            B_row, su_l, sd_l, sB_l, sB_n, N, A2, bias, g4, j4, v4, REV,
                            SOFTPLUS, NG, V)
    # pass 3: gradients, backwards along the route
    U_FIRST: tl.constexpr = K_FIRST | (U_SHARED == 0)
    U_LAST: tl.constexpr = K_LAST | (U_SHARED == 0)
    Z_FIRST: tl.constexpr = K_FIRST | (Z_SHARED == 0)
    Z_LAST: tl.constexpr = K_LAST | (Z_SHARED == 0)
    dA = tl.zeros(h.shape, tl.float32)
    dD = tl.zeros([BLOCK_D, RC, G], tl.float32)  # every group sums it: one counts
    dbias = tl.zeros([BLOCK_D, RC], tl.float32)
    for part in tl.static_range(2):  # backwards: the partial last vector first when forward
        TAIL = part == (1 if REV else 0)
        for i in range(TAIL_N if TAIL else NQ):
            q = NQ if TAIL else NQ - 1 - i
            tok, ok = tokens(r4, q, v4, L, REV, COL, CL, V, NB, W, CPT, TAIL)
            tok3, ok3 = tokens(r3, q, v3, L, REV, COL, CL, V, NB, W, CPT, TAIL)
            tokb, okb = tokens(rb, q, v3, L, REV, COL, CL, V, NB, W, CPT, TAIL)
            e, dA, dD, dbias = grad_step(
                e, dA, dD, dbias, tl.load(slot + q * BLOCK_N), tok, ok, tok3, ok3,
                bc_at + tokb, okb, u_row, d_row, z_row, do_row, B_row, C_row, su_l, sd_l, sz_l,
                sdo_l, sB_l, sC_l, sB_n, sC_n, L, N, A, A2, Dp, bias, dout_scale, first_g, g4,
                j4, v4, g3, u_at, z_at, dd_at, du_ptr, du_acc_ptr, ddelta_ptr, dz_ptr,
                dz_acc_ptr, dB_ptr, dC_ptr, REV, U_FIRST, U_LAST, Z_FIRST, Z_LAST, HAS_Z,
                SOFTPLUS, NG, V)
    n3 = g3 * NG + tl.arange(0, NG)[None, None, :]
    tl.store(dA_ptr + (b * total + ch3) * N + n3, tl.sum(dA, 1), mask=n3 < N)
    at = b * total + k * dim + d0 + tl.arange(0, BLOCK_D)
    first = tl.arange(0, G)[None, None, :] == 0
    tl.store(dD_ptr + at, tl.sum(tl.sum(tl.where(first, dD, 0.0), 2), 1))
    tl.store(dbias_ptr + at, tl.sum(dbias, 1))


@triton.jit
def scan_bwd_kernel(u_ptr, su_b, su_c, su_l, d_ptr, sd_b, sd_c, sd_l, z_ptr, sz_b, sz_c, sz_l,
                    B_ptr, sB_b, sB_g, sB_n, sB_l, C_ptr, sC_b, sC_g, sC_n, sC_l,
                    A_ptr, D_ptr, bias_ptr, sums_ptr, states_ptr, dout_ptr, sdo_b, sdo_c, sdo_l,
                    dlast_ptr, du_ptr, du_acc_ptr, ddelta_ptr, dz_ptr, dz_acc_ptr, dB_ptr,
                    dC_ptr, dA_ptr, dD_ptr, dbias_ptr, L, dim, cpg, N, sums_w, slots, dout_scale,
                    K: tl.constexpr, ROUTES: tl.constexpr, SERIAL: tl.constexpr,
                    MERGED: tl.constexpr, U_SHARED: tl.constexpr, Z_SHARED: tl.constexpr,
                    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
                    SOFTPLUS: tl.constexpr, HAS_DLAST: tl.constexpr, BLOCK_D: tl.constexpr,
                    BLOCK_N: tl.constexpr, G: tl.constexpr, V: tl.constexpr,
                    RC_R: tl.constexpr, CL_R: tl.constexpr, SS_R: tl.constexpr,
                    RC_C: tl.constexpr, CL_C: tl.constexpr, SS_C: tl.constexpr,
                    NB: tl.constexpr, CPT: tl.constexpr, W: tl.constexpr,
                    TAIL_R: tl.constexpr):
    """The backward, in the forward's grid and chunks (:func:`.triton_fwd.each_route`); SERIAL
    when K > 1 routes are merged or share u or z, whose gradients then add up route by route in
    the program. ``states_ptr``: fp32 scratch of ``slots * BLOCK_N`` per (batch, channel)."""
    each_route(_bwd_route, (u_ptr, su_b, su_c, su_l, d_ptr, sd_b, sd_c, sd_l, z_ptr, sz_b, sz_c,
                            sz_l, B_ptr, sB_b, sB_g, sB_n, sB_l, C_ptr, sC_b, sC_g, sC_n, sC_l,
                            A_ptr, D_ptr, bias_ptr),
               (states_ptr, dout_ptr, sdo_b, sdo_c, sdo_l, dlast_ptr, du_ptr, du_acc_ptr,
                ddelta_ptr, dz_ptr, dz_acc_ptr, dB_ptr, dC_ptr, dA_ptr, dD_ptr, dbias_ptr, slots,
                dout_scale), L, dim, cpg, N, sums_w, sums_ptr, K, ROUTES, SERIAL, MERGED,
               U_SHARED, Z_SHARED, HAS_D, HAS_Z, HAS_BIAS, SOFTPLUS, HAS_DLAST, BLOCK_D, BLOCK_N,
               G, V, RC_R, CL_R, SS_R, RC_C, CL_C, SS_C, NB, CPT, W, TAIL_R)


@triton.jit
def _sum_middle(in_ptr, out_ptr, O, M, I, start, BLOCK: tl.constexpr):
    """out[o, i] = sum over m of in[o, m, i], in order of m, for this program's ``BLOCK``
    elements of out."""
    offs = start + tl.arange(0, BLOCK)
    mask = offs < O * I
    width = tl.maximum(I, 1)  # an empty sequence: nothing to sum, and no division by 0
    base = (offs // width) * M * I + offs % width
    acc = tl.zeros([BLOCK], tl.float32)
    for m in range(M):
        acc += tl.load(in_ptr + base + m * I, mask=mask, other=0.0)
    tl.store(out_ptr + offs, acc.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def reduce_partials_kernel(dB_parts, dB, dC_parts, dC, dA_parts, dA, dD_parts, dD, dbias_parts,
                           dbias, OB, MB, IB, batch, total, N, HAS_D: tl.constexpr,
                           HAS_BIAS: tl.constexpr, BLOCK: tl.constexpr):
    """The backward's second launch: fixed-order sums of the scan's partials. Grid (blocks, 5):
    program_id(1) picks dB, dC (summed over a group's channel blocks, (OB, MB, IB)), dA, dD or
    delta_bias (summed over the batch)."""
    start = tl.program_id(0) * BLOCK
    which = tl.program_id(1)
    if which == 0:
        _sum_middle(dB_parts, dB, OB, MB, IB, start, BLOCK)
    elif which == 1:
        _sum_middle(dC_parts, dC, OB, MB, IB, start, BLOCK)
    elif which == 2:
        _sum_middle(dA_parts, dA, 1, batch, total * N, start, BLOCK)
    elif which == 3:
        if HAS_D:
            _sum_middle(dD_parts, dD, 1, batch, total, start, BLOCK)
    elif HAS_BIAS:
        _sum_middle(dbias_parts, dbias, 1, batch, total, start, BLOCK)
