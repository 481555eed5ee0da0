"""Triton backward scan for routes along the token axis, in the forward's layout
(:mod:`.triton_fwd_rows`): one warp of channels x state groups, time inside a thread.

The program walks its route's vectors backwards (last route step first). Each vector restarts
the forward recurrence from the state the forward saved at the vector's entry, then runs the
adjoint ``dh_t = C_t dy_t + a_{t+1} dh_{t+1}`` as a forward in-thread scan over the vector
flipped in-thread. ``a_{t+1}`` belongs to the neighbouring step, so the scan carries, besides the
propagated adjoint ``e_t = a_t dh_t`` as a function of the ``e`` arriving from later steps, the
same map excluding the element itself: ``dh_t = C_t dy_t + e_{t+1}`` then needs no shifted
decay and no shuffle. With z, a first pass over the states recomputes the ungated output for
z's gradient.

Nothing is added up with atomics: dB and dC are summed over the program's channels and written
per (batch, channel block); dA, dD and delta_bias per (batch, channel); routes that share u or z
add their gradients in route order in one program. The launcher sums the partials in fixed order.
"""
import triton
import triton.language as tl

from .triton_fwd import softplus
from .triton_fwd_rows import _combine, _vec


@triton.jit
def _adjoint_combine(p1, q1, e1, f1, p2, q2, e2, f2):
    # in reverse route order; (p, q): the map from the propagated adjoint arriving from later
    # steps to e_t = a_t dh_t, inclusive of the element; (e, f): the same, exclusive of it
    return p2 * p1, p2 * q1 + q2, e2 * p1, e2 * q1 + f2


@triton.jit
def _last(x, offs_t, T: tl.constexpr):
    return tl.sum(tl.where(offs_t[None, None, :] == T - 1, x, 0.0), 2)


@triton.jit
def _bwd_step(carry, dA, dD, dbias, tok0, slot, L, N, u_row, d_row, z_row, B_row, C_row,
              dout_row, su_l, sd_l, sz_l, sB_l, sC_l, sdo_l, sB_n, sC_n, A, Dp, bias, dout_scale,
              offs_g, offs_j, offs_t, first_g, state_ptrs, u_at, z_at, dd_at, bc_at,
              du_ptr, du_acc_ptr, ddelta_ptr, dz_ptr, dz_acc_ptr, dB_ptr, dC_ptr,
              REV: tl.constexpr, MASKED: tl.constexpr, U_FIRST: tl.constexpr,
              U_LAST: tl.constexpr, Z_FIRST: tl.constexpr, Z_LAST: tl.constexpr,
              HAS_Z: tl.constexpr, SOFTPLUS: tl.constexpr, EVEN_N: tl.constexpr,
              BLOCK_N: tl.constexpr, NG: tl.constexpr, T: tl.constexpr):
    """Gradients of the vector of tokens ``tok0 .. tok0 + T`` (forward state slot ``slot``);
    ``carry`` (D, G, NG) is the propagated adjoint arriving from the later route steps."""
    tok = tok0 + offs_t[None, None, :]
    real = tok < L
    h0 = tl.load(state_ptrs + slot * BLOCK_N)
    u = _vec(u_row + tok * su_l, real, REV, MASKED)
    x = _vec(d_row + tok * sd_l, real, REV, MASKED) + bias
    dt = softplus(x) if SOFTPLUS else x
    if MASKED:
        route_real = tok0 + ((T - 1 - offs_t) if REV else offs_t)[None, None, :] < L
        dt = tl.where(route_real, dt, 0.0)
    dy = _vec(dout_row + tok * sdo_l, real, REV, MASKED) * dout_scale
    dtu = dt * u
    if HAS_Z:
        zt = _vec(z_row + tok * sz_l, real, REV, MASKED)
        y = Dp * u * first_g
        for j in tl.static_range(NG):
            pick_j = offs_j[None, None, :] == j
            n = (offs_g * NG + j)[None, :, None]
            mask = (n < N) & real
            Aj = tl.sum(tl.where(pick_j, A, 0.0), 2)[:, :, None]
            Bj = _vec(B_row + n * sB_n + tok * sB_l, mask, REV, MASKED | (EVEN_N == 0))
            Cj = _vec(C_row + n * sC_n + tok * sC_l, mask, REV, MASKED | (EVEN_N == 0))
            pa, hs = tl.associative_scan((tl.exp(dt * Aj), dtu * Bj), 2, _combine)
            y += (hs + pa * tl.sum(tl.where(pick_j, h0, 0.0), 2)[:, :, None]) * Cj
        y = tl.sum(y, 1)[:, None, :]
        sig = tl.sigmoid(zt)
        dz = tl.sum(dy * y * sig * (1.0 + zt * (1.0 - sig)) * first_g, 1)
        dy = dy * zt * sig
    ddt = tl.zeros_like(dtu)
    du = Dp * dy * first_g
    for j in tl.static_range(NG):
        pick_j = offs_j[None, None, :] == j
        n = (offs_g * NG + j)[None, :, None]
        mask = (n < N) & real
        Aj = tl.sum(tl.where(pick_j, A, 0.0), 2)[:, :, None]
        Bj = _vec(B_row + n * sB_n + tok * sB_l, mask, REV, MASKED | (EVEN_N == 0))
        Cj = _vec(C_row + n * sC_n + tok * sC_l, mask, REV, MASKED | (EVEN_N == 0))
        a = tl.exp(dt * Aj)
        b = dtu * Bj
        pa, hs = tl.associative_scan((a, b), 2, _combine)
        hs = hs + pa * tl.sum(tl.where(pick_j, h0, 0.0), 2)[:, :, None]
        c = Cj * dy
        ar = tl.flip(a, 2)
        cr = tl.flip(c, 2)
        p, q, e, f = tl.associative_scan((ar, ar * cr, tl.full(ar.shape, 1.0, tl.float32),
                                          tl.zeros_like(ar)), 2, _adjoint_combine)
        yj = tl.sum(tl.where(pick_j, carry, 0.0), 2)
        dh = tl.flip(cr + e * yj[:, :, None] + f, 2)
        carry = tl.where(pick_j, (_last(p, offs_t, T) * yj + _last(q, offs_t, T))[:, :, None],
                         carry)
        dhhb = dh * (hs - b)  # a_t h_{t-1} = h_t - b_t
        ddt += dhhb * Aj + dh * Bj * u
        du += dh * Bj * dt
        dA = tl.where(pick_j, dA + tl.sum(dhhb * dt, 2)[:, :, None], dA)
        dBj = tl.sum(dh * dtu, 0)  # (G, T): this program's channels
        dCj = tl.sum(dy * hs, 0)
        if REV:
            dBj = tl.flip(dBj, 1)
            dCj = tl.flip(dCj, 1)
        at = bc_at + (offs_g * NG + j)[:, None] * L + tok0 + offs_t[None, :]
        bc_mask = ((offs_g * NG + j) < N)[:, None] & (tok0 + offs_t[None, :] < L)
        tl.store(dB_ptr + at, dBj, mask=bc_mask)
        tl.store(dC_ptr + at, dCj, mask=bc_mask)
    if SOFTPLUS:
        ddt = ddt * tl.sigmoid(x)
    if MASKED:
        ddt = tl.where(route_real, ddt, 0.0)
    ddt = tl.sum(ddt, 1)  # (D, T)
    du = tl.sum(du, 1)
    dD += tl.sum(dy * u * first_g, 1)
    dbias += ddt
    if REV:
        ddt = tl.flip(ddt, 1)
        du = tl.flip(du, 1)
    tok2 = tok0 + offs_t[None, :]
    real2 = tok2 < L
    _store(ddelta_ptr + dd_at + tok2, ddt, real2, MASKED)
    _merge_store(du_acc_ptr + u_at + tok2, du_ptr + u_at + tok2, du, real2, MASKED, U_FIRST,
                 U_LAST)
    if HAS_Z:
        if REV:
            dz = tl.flip(dz, 1)
        _merge_store(dz_acc_ptr + z_at + tok2, dz_ptr + z_at + tok2, dz, real2, MASKED, Z_FIRST,
                     Z_LAST)
    return carry, dA, dD, dbias


@triton.jit
def _store(ptrs, x, mask, MASKED: tl.constexpr):
    if MASKED:
        tl.store(ptrs, x.to(ptrs.dtype.element_ty), mask=mask)
    else:
        tl.store(ptrs, x.to(ptrs.dtype.element_ty))


@triton.jit
def _merge_store(acc_ptrs, out_ptrs, x, mask, MASKED: tl.constexpr, FIRST: tl.constexpr,
                 LAST: tl.constexpr):
    """Add to what the previous routes left (fp32 in ``acc_ptrs``); the last stores the total."""
    if not FIRST:
        if MASKED:
            x += tl.load(acc_ptrs, mask=mask, other=0.0)
        else:
            x += tl.load(acc_ptrs)
    if LAST:
        _store(out_ptrs, x, mask, MASKED)
    else:
        _store(acc_ptrs, x, mask, MASKED)


@triton.jit
def _bwd_route(b, k, d0, L, dim, total, cpg, N, n_slots, dout_scale,
               u_ptr, su_b, su_c, su_l, d_ptr, sd_b, sd_c, sd_l, z_ptr, sz_b, sz_c, sz_l,
               B_ptr, sB_b, sB_g, sB_n, sB_l, C_ptr, sC_b, sC_g, sC_n, sC_l,
               A_ptr, D_ptr, bias_ptr, states_ptr, dout_ptr, sdo_b, sdo_c, sdo_l, dlast_ptr,
               du_ptr, du_acc_ptr, ddelta_ptr, dz_ptr, dz_acc_ptr, dB_ptr, dC_ptr,
               dA_ptr, dD_ptr, dbias_ptr,
               REV: tl.constexpr, K_FIRST: tl.constexpr, K_LAST: tl.constexpr,
               MERGED: tl.constexpr, U_SHARED: tl.constexpr, Z_SHARED: tl.constexpr,
               HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
               SOFTPLUS: tl.constexpr, HAS_DLAST: tl.constexpr, EVEN_N: tl.constexpr,
               BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, G: tl.constexpr, T: tl.constexpr):
    NG: tl.constexpr = BLOCK_N // G
    offs_d = d0 + tl.arange(0, BLOCK_D)
    offs_g = tl.arange(0, G)
    offs_j = tl.arange(0, NG)
    offs_t = tl.arange(0, T)
    ch = k * dim + offs_d
    d3 = offs_d[:, None, None]
    c3 = ch[:, None, None]
    g0 = offs_g[None, :, None] * 0
    n3 = offs_g[None, :, None] * NG + offs_j[None, None, :]
    A = tl.load(A_ptr + c3 * N + n3, mask=n3 < N, other=0.0)
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
    dout_row = dout_ptr + b * sdo_b + (d3 if MERGED else c3) * sdo_c + g0
    grp = (k * dim + d0) // cpg
    B_row = B_ptr + b * sB_b + grp * sB_g + d3 * 0
    C_row = C_ptr + b * sC_b + grp * sC_g + d3 * 0
    # gradients come back contiguous: rows of L
    u_at = (b * (dim if U_SHARED else total) + (offs_d if U_SHARED else ch))[:, None] * L
    z_at = (b * (dim if Z_SHARED else total) + (offs_d if Z_SHARED else ch))[:, None] * L
    dd_at = (b * total + ch)[:, None] * L
    bc_at = (b * (total // BLOCK_D) + (k * dim + d0) // BLOCK_D) * N * L
    state_ptrs = states_ptr + (b * total + c3) * n_slots * BLOCK_N + n3
    first_g = (offs_g == 0)[None, :, None].to(tl.float32)
    if HAS_DLAST:
        carry = tl.load(dlast_ptr + (b * total + c3) * N + n3, mask=n3 < N, other=0.0)
    else:
        carry = tl.zeros([BLOCK_D, G, NG], tl.float32)
    dA = tl.zeros([BLOCK_D, G, NG], tl.float32)
    dD = tl.zeros([BLOCK_D, T], tl.float32)
    dbias = tl.zeros([BLOCK_D, T], tl.float32)
    n_full = L // T
    partial = L % T
    head = (partial + T - 1) // T  # 1: a reverse route's walk starts with the partial vector
    U_FIRST: tl.constexpr = K_FIRST | (U_SHARED == 0)
    U_LAST: tl.constexpr = K_LAST | (U_SHARED == 0)
    Z_FIRST: tl.constexpr = K_FIRST | (Z_SHARED == 0)
    Z_LAST: tl.constexpr = K_LAST | (Z_SHARED == 0)
    # backwards along the route: a forward route from the end of the sequence, a reverse one
    # from its start; the forward saved the state entering each vector in its own order
    if REV:
        for v in range(n_full):
            carry, dA, dD, dbias = _bwd_step(
                carry, dA, dD, dbias, v * T, head + n_full - 1 - v, L, N, u_row, d_row,
                z_row, B_row, C_row, dout_row, su_l, sd_l, sz_l, sB_l, sC_l, sdo_l, sB_n, sC_n,
                A, Dp, bias, dout_scale, offs_g, offs_j, offs_t, first_g, state_ptrs, u_at, z_at,
                dd_at, bc_at, du_ptr, du_acc_ptr, ddelta_ptr, dz_ptr, dz_acc_ptr, dB_ptr, dC_ptr,
                True, False, U_FIRST, U_LAST, Z_FIRST, Z_LAST, HAS_Z, SOFTPLUS, EVEN_N, BLOCK_N,
                NG, T)
        if partial > 0:
            carry, dA, dD, dbias = _bwd_step(
                carry, dA, dD, dbias, n_full * T, 0, L, N, u_row, d_row,
                z_row, B_row, C_row, dout_row, su_l, sd_l, sz_l, sB_l, sC_l, sdo_l, sB_n, sC_n,
                A, Dp, bias, dout_scale, offs_g, offs_j, offs_t, first_g, state_ptrs, u_at, z_at,
                dd_at, bc_at, du_ptr, du_acc_ptr, ddelta_ptr, dz_ptr, dz_acc_ptr, dB_ptr, dC_ptr,
                True, True, U_FIRST, U_LAST, Z_FIRST, Z_LAST, HAS_Z, SOFTPLUS, EVEN_N, BLOCK_N,
                NG, T)
    else:
        if partial > 0:
            carry, dA, dD, dbias = _bwd_step(
                carry, dA, dD, dbias, n_full * T, n_full, L, N, u_row, d_row,
                z_row, B_row, C_row, dout_row, su_l, sd_l, sz_l, sB_l, sC_l, sdo_l, sB_n, sC_n,
                A, Dp, bias, dout_scale, offs_g, offs_j, offs_t, first_g, state_ptrs, u_at, z_at,
                dd_at, bc_at, du_ptr, du_acc_ptr, ddelta_ptr, dz_ptr, dz_acc_ptr, dB_ptr, dC_ptr,
                False, True, U_FIRST, U_LAST, Z_FIRST, Z_LAST, HAS_Z, SOFTPLUS, EVEN_N, BLOCK_N,
                NG, T)
        for q in range(n_full):
            v = n_full - 1 - q
            carry, dA, dD, dbias = _bwd_step(
                carry, dA, dD, dbias, v * T, v, L, N, u_row, d_row,
                z_row, B_row, C_row, dout_row, su_l, sd_l, sz_l, sB_l, sC_l, sdo_l, sB_n, sC_n,
                A, Dp, bias, dout_scale, offs_g, offs_j, offs_t, first_g, state_ptrs, u_at, z_at,
                dd_at, bc_at, du_ptr, du_acc_ptr, ddelta_ptr, dz_ptr, dz_acc_ptr, dB_ptr, dC_ptr,
                False, False, U_FIRST, U_LAST, Z_FIRST, Z_LAST, HAS_Z, SOFTPLUS, EVEN_N, BLOCK_N,
                NG, T)
    tl.store(dA_ptr + (b * total + c3) * N + n3, dA, mask=n3 < N)
    at = b * total + ch
    tl.store(dD_ptr + at, tl.sum(dD, 1))
    tl.store(dbias_ptr + at, tl.sum(dbias, 1))


@triton.jit
def scan_bwd_rows_kernel(u_ptr, su_b, su_c, su_l, d_ptr, sd_b, sd_c, sd_l, z_ptr, sz_b, sz_c, sz_l,
                         B_ptr, sB_b, sB_g, sB_n, sB_l, C_ptr, sC_b, sC_g, sC_n, sC_l,
                         A_ptr, D_ptr, bias_ptr, states_ptr, dout_ptr, sdo_b, sdo_c, sdo_l,
                         dlast_ptr, du_ptr, du_acc_ptr, ddelta_ptr, dz_ptr, dz_acc_ptr, dB_ptr,
                         dC_ptr, dA_ptr, dD_ptr, dbias_ptr, L, dim, cpg, N, n_slots, dout_scale,
                         K: tl.constexpr, ROUTES: tl.constexpr, SERIAL: tl.constexpr,
                         MERGED: tl.constexpr, U_SHARED: tl.constexpr, Z_SHARED: tl.constexpr,
                         HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
                         SOFTPLUS: tl.constexpr, HAS_DLAST: tl.constexpr, EVEN_N: tl.constexpr,
                         BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, G: tl.constexpr,
                         T: tl.constexpr):
    """Grid (dim // BLOCK_D, batch, 1 if SERIAL else K); SERIAL when K > 1 routes share u or z,
    whose gradients then add up route by route in the program."""
    d0 = tl.program_id(0) * BLOCK_D
    b = tl.program_id(1)
    for k in tl.static_range(K):
        if (tl.program_id(2) == k) | SERIAL:
            _bwd_route(b, k, d0, L, dim, K * dim, cpg, N, n_slots, dout_scale,
                       u_ptr, su_b, su_c, su_l, d_ptr, sd_b, sd_c, sd_l, z_ptr, sz_b, sz_c, sz_l,
                       B_ptr, sB_b, sB_g, sB_n, sB_l, C_ptr, sC_b, sC_g, sC_n, sC_l,
                       A_ptr, D_ptr, bias_ptr, states_ptr, dout_ptr, sdo_b, sdo_c, sdo_l,
                       dlast_ptr, du_ptr, du_acc_ptr, ddelta_ptr, dz_ptr, dz_acc_ptr, dB_ptr,
                       dC_ptr, dA_ptr, dD_ptr, dbias_ptr,
                       (ROUTES >> (2 * k)) & 1, k == 0, k == K - 1, MERGED, U_SHARED, Z_SHARED,
                       HAS_D, HAS_Z, HAS_BIAS, SOFTPLUS, HAS_DLAST, EVEN_N, BLOCK_D, BLOCK_N, G, T)
        if SERIAL:
            # the next route reads the u/z gradients this one stored, from other threads
            tl.debug_barrier()
