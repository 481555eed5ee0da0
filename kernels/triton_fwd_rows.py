"""Triton forward scan for routes along the token axis (forward, reverse): time inside a thread.

A program is one warp: ``BLOCK_D`` channels x ``G`` state groups on its lanes, each thread owning
``BLOCK_N // G`` states of one channel, and walks the sequence in groups of ``T`` tokens (one
16-byte vector of u, delta, z, B and C per thread). Every tile is ``(BLOCK_D, G, T)``: u, delta
and z are loaded through pointers broadcast over the group axis (stride 0) and B, C over the
channel axis, so all tiles share one layout with the time axis in-thread: the scan along time is
a sequential in-register scan (no shuffles) and only ``y``'s sum over the G groups crosses lanes.

A reverse route loads the same ascending vectors, walks them from the end of the sequence and
flips each tile in-thread (register moves; Triton 3.8's ``associative_scan(reverse=True)`` costs
~20 shuffles per step). Whole vectors run unmasked; the partial vector at the end of the sequence
is a separate masked step (first for a reverse route), so the main loop's loads stay vectors.

For the backward (:mod:`.triton_bwd_rows`), the state entering each vector is saved, slot by
slot in the order the route walks the vectors (the partial vector first for a reverse route). Merged routes run one after another in the program
and add up in route order, as in :mod:`.triton_fwd` (deterministic, no atomics).
"""
import triton
import triton.language as tl

from .triton_fwd import softplus

LOG2E = tl.constexpr(1.4426950408889634)


@triton.jit
def _combine(a1, b1, a2, b2):
    return a1 * a2, a2 * b1 + b2


@triton.jit
def _vec(ptrs, mask, REV: tl.constexpr, MASKED: tl.constexpr):
    """A (D, G, T) tile loaded in token order, as fp32 in route order (reversed along time for a
    reverse route); 0 where masked."""
    if MASKED:
        x = tl.load(ptrs, mask=mask, other=0.0)
    else:
        x = tl.load(ptrs)
    x = x.to(tl.float32)
    if REV:
        x = tl.flip(x, 2)
    return x


@triton.jit
def _step(h, tok0, slot, L, u_row, d_row, z_row, B_row, C_row, su_l, sd_l, sz_l, sB_l, sC_l,
          sB_n, sC_n, N, A2, Dp, bias, offs_g, offs_j, offs_t, first_g, row, state_ptrs,
          out_ptr, acc_ptr, out_scale,
          REV: tl.constexpr, MASKED: tl.constexpr, FIRST: tl.constexpr, LAST: tl.constexpr,
          HAS_Z: tl.constexpr, SOFTPLUS: tl.constexpr, SAVE_STATES: tl.constexpr,
          EVEN_N: tl.constexpr, BLOCK_N: tl.constexpr, NG: tl.constexpr, T: tl.constexpr):
    """The vector of tokens ``tok0 .. tok0 + T`` from state ``h`` (D, G, NG), saved in state
    ``slot``; returns the state after it."""
    if SAVE_STATES:
        tl.store(state_ptrs + slot * BLOCK_N, h)
    tok = tok0 + offs_t[None, None, :]
    real = tok < L
    u = _vec(u_row + tok * su_l, real, REV, MASKED)
    dt = _vec(d_row + tok * sd_l, real, REV, MASKED) + bias
    if SOFTPLUS:
        dt = softplus(dt)
    if MASKED:
        # steps past the end leave the state alone: a = 1, b = 0
        dt = tl.where(tok0 + ((T - 1 - offs_t) if REV else offs_t)[None, None, :] < L, dt, 0.0)
    dtu = dt * u
    y = Dp * u * first_g  # D u, counted on one group's lanes
    for j in tl.static_range(NG):
        pick_j = offs_j[None, None, :] == j
        n = (offs_g * NG + j)[None, :, None]
        mask = (n < N) & real
        Bj = _vec(B_row + n * sB_n + tok * sB_l, mask, REV, MASKED | (EVEN_N == 0))
        Cj = _vec(C_row + n * sC_n + tok * sC_l, mask, REV, MASKED | (EVEN_N == 0))
        A2j = tl.sum(tl.where(pick_j, A2, 0.0), 2)[:, :, None]
        hj = tl.sum(tl.where(pick_j, h, 0.0), 2)
        pa, hs = tl.associative_scan((tl.exp2(dt * A2j), dtu * Bj), 2, _combine)
        hs = hs + pa * hj[:, :, None]
        end = tl.sum(tl.where(offs_t[None, None, :] == T - 1, hs, 0.0), 2)
        h = tl.where(pick_j, end[:, :, None], h)
        y += hs * Cj
    if HAS_Z:
        zt = _vec(z_row + tok * sz_l, real, REV, MASKED)
        y = y * zt * tl.sigmoid(zt)
    y = tl.sum(y, 1) * out_scale  # (D, T)
    if REV:
        y = tl.flip(y, 1)
    at_tok = row + tok0 + offs_t[None, :]
    real2 = tok0 + offs_t[None, :] < L
    if not FIRST:
        if MASKED:
            y += tl.load(acc_ptr + at_tok, mask=real2, other=0.0)
        else:
            y += tl.load(acc_ptr + at_tok)
    dst = out_ptr if LAST else acc_ptr
    if MASKED:
        tl.store(dst + at_tok, y.to(dst.dtype.element_ty), mask=real2)
    else:
        tl.store(dst + at_tok, y.to(dst.dtype.element_ty))
    return h


@triton.jit
def _route(b, k, d0, L, dim, total, cpg, N, n_slots, out_scale,
           u_ptr, su_b, su_c, su_l, d_ptr, sd_b, sd_c, sd_l, z_ptr, sz_b, sz_c, sz_l,
           B_ptr, sB_b, sB_g, sB_n, sB_l, C_ptr, sC_b, sC_g, sC_n, sC_l,
           A_ptr, D_ptr, bias_ptr, out_ptr, acc_ptr, states_ptr, last_ptr,
           REV: tl.constexpr, FIRST: tl.constexpr, LAST: tl.constexpr, MERGED: tl.constexpr,
           U_SHARED: tl.constexpr, Z_SHARED: tl.constexpr, HAS_D: tl.constexpr,
           HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
           SAVE_STATES: tl.constexpr, EVEN_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, G: tl.constexpr, T: tl.constexpr):
    NG: tl.constexpr = BLOCK_N // G
    offs_d = d0 + tl.arange(0, BLOCK_D)
    offs_g = tl.arange(0, G)
    offs_j = tl.arange(0, NG)
    offs_t = tl.arange(0, T)
    ch = k * dim + offs_d
    d3 = offs_d[:, None, None]
    c3 = ch[:, None, None]
    g0 = offs_g[None, :, None] * 0  # the stride-0 group axis of per-channel rows
    n3 = offs_g[None, :, None] * NG + offs_j[None, None, :]  # (1, G, NG) state index
    A2 = tl.load(A_ptr + c3 * N + n3, mask=n3 < N, other=0.0) * LOG2E
    if HAS_D:
        Dp = tl.load(D_ptr + c3)
    else:
        Dp = tl.zeros([BLOCK_D, 1, 1], tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + c3)
    else:
        bias = tl.zeros([BLOCK_D, 1, 1], tl.float32)
    u_row = u_ptr + b * su_b + (d3 if U_SHARED else c3) * su_c + g0
    z_row = z_ptr + b * sz_b + (d3 if Z_SHARED else c3) * sz_c + g0
    d_row = d_ptr + b * sd_b + c3 * sd_c + g0
    grp = (k * dim + d0) // cpg
    B_row = B_ptr + b * sB_b + grp * sB_g + d3 * 0
    C_row = C_ptr + b * sC_b + grp * sC_g + d3 * 0
    row = (b * (dim if MERGED else total) + (offs_d if MERGED else ch))[:, None] * L
    state_ptrs = states_ptr + (b * total + c3) * n_slots * BLOCK_N + n3
    first_g = (offs_g == 0)[None, :, None].to(tl.float32)
    h = tl.zeros([BLOCK_D, G, NG], tl.float32)
    n_full = L // T
    partial = L % T
    head = (partial + T - 1) // T  # 1: a reverse route starts with the partial vector
    if REV:
        if partial > 0:
            h = _step(h, n_full * T, 0, L, u_row, d_row, z_row, B_row, C_row, su_l,
                      sd_l, sz_l, sB_l, sC_l, sB_n, sC_n, N, A2, Dp, bias, offs_g, offs_j,
                      offs_t, first_g, row, state_ptrs, out_ptr, acc_ptr, out_scale,
                      True, True, FIRST, LAST, HAS_Z, SOFTPLUS, SAVE_STATES,
                      EVEN_N, BLOCK_N, NG, T)
        for q in range(n_full):
            h = _step(h, (n_full - 1 - q) * T, head + q, L, u_row, d_row, z_row, B_row,
                      C_row, su_l, sd_l, sz_l, sB_l, sC_l, sB_n, sC_n, N, A2, Dp, bias, offs_g,
                      offs_j, offs_t, first_g, row, state_ptrs, out_ptr, acc_ptr, out_scale,
                      True, False, FIRST, LAST, HAS_Z, SOFTPLUS, SAVE_STATES,
                      EVEN_N, BLOCK_N, NG, T)
    else:
        for q in range(n_full):
            h = _step(h, q * T, q, L, u_row, d_row, z_row, B_row, C_row, su_l, sd_l, sz_l,
                      sB_l, sC_l, sB_n, sC_n, N, A2, Dp, bias, offs_g, offs_j, offs_t, first_g,
                      row, state_ptrs, out_ptr, acc_ptr, out_scale,
                      False, False, FIRST, LAST, HAS_Z, SOFTPLUS, SAVE_STATES,
                      EVEN_N, BLOCK_N, NG, T)
        if partial > 0:
            h = _step(h, n_full * T, n_full, L, u_row, d_row, z_row, B_row, C_row, su_l,
                      sd_l, sz_l, sB_l, sC_l, sB_n, sC_n, N, A2, Dp, bias, offs_g, offs_j,
                      offs_t, first_g, row, state_ptrs, out_ptr, acc_ptr, out_scale,
                      False, True, FIRST, LAST, HAS_Z, SOFTPLUS, SAVE_STATES,
                      EVEN_N, BLOCK_N, NG, T)
    tl.store(last_ptr + (b * total + c3) * N + n3, h, mask=n3 < N)


@triton.jit
def scan_fwd_rows_kernel(u_ptr, su_b, su_c, su_l, d_ptr, sd_b, sd_c, sd_l, z_ptr, sz_b, sz_c, sz_l,
                         B_ptr, sB_b, sB_g, sB_n, sB_l, C_ptr, sC_b, sC_g, sC_n, sC_l,
                         A_ptr, D_ptr, bias_ptr, out_ptr, acc_ptr, states_ptr, last_ptr,
                         L, dim, cpg, N, n_slots, out_scale,
                         K: tl.constexpr, ROUTES: tl.constexpr, SERIAL: tl.constexpr,
                         MERGED: tl.constexpr, U_SHARED: tl.constexpr, Z_SHARED: tl.constexpr,
                         HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
                         SOFTPLUS: tl.constexpr, SAVE_STATES: tl.constexpr,
                         EVEN_N: tl.constexpr, BLOCK_D: tl.constexpr,
                         BLOCK_N: tl.constexpr, G: tl.constexpr, T: tl.constexpr):
    """Grid (dim // BLOCK_D, batch, 1 if SERIAL else K): channel blocks first, so programs that
    run side by side share a batch element's B and C rows. ``ROUTES`` packs the route codes two
    bits each (bit 0: reversed); states are saved as (batch, K*dim, n_slots, BLOCK_N), one slot
    per vector of T tokens."""
    d0 = tl.program_id(0) * BLOCK_D
    b = tl.program_id(1)
    for k in tl.static_range(K):
        if (tl.program_id(2) == k) | SERIAL:
            _route(b, k, d0, L, dim, K * dim, cpg, N, n_slots, out_scale,
                   u_ptr, su_b, su_c, su_l, d_ptr, sd_b, sd_c, sd_l, z_ptr, sz_b, sz_c, sz_l,
                   B_ptr, sB_b, sB_g, sB_n, sB_l, C_ptr, sC_b, sC_g, sC_n, sC_l,
                   A_ptr, D_ptr, bias_ptr, out_ptr, acc_ptr, states_ptr, last_ptr,
                   (ROUTES >> (2 * k)) & 1, (k == 0) | (MERGED == 0),
                   (k == K - 1) | (MERGED == 0), MERGED, U_SHARED, Z_SHARED, HAS_D, HAS_Z,
                   HAS_BIAS, SOFTPLUS, SAVE_STATES, EVEN_N, BLOCK_D, BLOCK_N, G, T)
        if SERIAL:
            # the next route reads what this one stored, from other threads
            tl.debug_barrier()
