"""Triton backward selective scan.

Same grid and tiles as the forward (:mod:`.triton_fwd`), walked from the last tile to the first.
Each tile restarts its forward scan from the state the forward saved at the tile's start, then
runs the adjoint ``dh_t = C_t dy_t + a_{t+1} dh_{t+1}`` as a reversed ``tl.associative_scan``
carrying ``dh`` into the tile before it. ``a_{t+1}`` comes from reading ``delta`` one step further
along the route (index arithmetic, not a shift of registers), and ``a_t h_{t-1} = h_t - b_t``
gives the decay's gradient without a shifted state.

Nothing is added up with atomics: A, D and delta_bias gradients are summed over the program's
tiles and written per batch element; B and C gradients are summed over the program's channels and
written per channel block; the launcher adds those partials up with ``torch.sum``.
"""
import triton
import triton.language as tl

from .triton_fwd import (load_at, merge_store, pick, route_setup, scan_tile,
                         state_ptrs, tile_dt, tile_pairs, tile_steps)


@triton.jit
def _bwd_route(b, k, d0, L, dim, total, cpg, N, n_tiles, n_slots, every, dout_scale,
               u_ptr, su_b, su_c, su_l, d_ptr, sd_b, sd_c, sd_l, z_ptr, sz_b, sz_c, sz_l,
               B_ptr, sB_b, sB_g, sB_n, sB_l, C_ptr, sC_b, sC_g, sC_n, sC_l,
               A_ptr, D_ptr, bias_ptr, states_ptr, dout_ptr, sdo_b, sdo_c, sdo_l, dlast_ptr,
               du_ptr, du_acc_ptr, ddelta_ptr, dz_ptr, dz_acc_ptr, dB_ptr, dC_ptr,
               dA_ptr, dD_ptr, dbias_ptr,
               ROUTE: tl.constexpr, k_is_first: tl.constexpr, k_is_last: tl.constexpr,
               H: tl.constexpr, W: tl.constexpr, MERGED: tl.constexpr,
               U_SHARED: tl.constexpr, Z_SHARED: tl.constexpr,
               HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
               SOFTPLUS: tl.constexpr, HAS_DLAST: tl.constexpr,
               BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr):
    ch, A, Dp, bias, u_rows, z_rows, d_rows, B_rows, C_rows = route_setup(
        b, k, d0, dim, cpg, A_ptr, D_ptr, bias_ptr, N, u_ptr, su_b, su_c, d_ptr, sd_b, sd_c,
        z_ptr, sz_b, sz_c, B_ptr, sB_b, sB_g, sB_n, C_ptr, sC_b, sC_g, sC_n,
        U_SHARED, Z_SHARED, HAS_D, HAS_BIAS, BLOCK_D, BLOCK_N)
    offs_d = d0 + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    offs_l = tl.arange(0, BLOCK_L)
    n_ok = (offs_n < N)[None, :, None]
    dout_rows = dout_ptr + b * sdo_b + (offs_d if MERGED else ch)[:, None, None] * sdo_c
    u_row = (b * (dim if U_SHARED else total) + (offs_d if U_SHARED else ch))[:, None, None] * L
    z_row = (b * (dim if Z_SHARED else total) + (offs_d if Z_SHARED else ch))[:, None, None] * L
    dd_row = (b * total + ch)[:, None, None] * L
    # this program's slot among the (batch, total // BLOCK_D) B/C partial sums
    part = (b * (total // BLOCK_D) + (k * dim + d0) // BLOCK_D) * N
    bc_row = (part + offs_n)[None, :, None] * L

    if HAS_DLAST:
        dh = tl.load(state_ptrs(dlast_ptr, b, ch, total, 1, 0, offs_n, N),
                     mask=(offs_n < N)[None, :], other=0.0)
    else:
        dh = tl.zeros([BLOCK_D, BLOCK_N], tl.float32)
    dA = tl.zeros([BLOCK_D, BLOCK_N], tl.float32)
    dD = tl.zeros([BLOCK_D, 1, 1], tl.float32)
    dbias = tl.zeros([BLOCK_D, 1, 1], tl.float32)
    for j in range(n_tiles):
        i = n_tiles - 1 - j
        tok, mask = tile_steps(i, L, offs_l, ROUTE, H, W, BLOCK_L)
        u, dt, x, Bt, a, bb = tile_pairs(u_rows, d_rows, B_rows, A, bias, tok, mask,
                                         n_ok & mask, su_l, sd_l, sB_l, SOFTPLUS)
        h0 = tl.load(state_ptrs(states_ptr, b, ch, total, n_slots, i * every, offs_n, BLOCK_N))
        hs = scan_tile(a, bb, h0, False)
        Ct = load_at(C_rows, tok, sC_l, n_ok & mask)
        dy = load_at(dout_rows, tok, sdo_l, mask) * dout_scale
        if HAS_Z:
            y = tl.sum(hs * Ct, axis=1, keep_dims=True) + Dp * u
            zt = load_at(z_rows, tok, sz_l, mask)
            sig = tl.sigmoid(zt)
            at = z_row + tok[None, None, :]
            merge_store(dz_acc_ptr + at, dz_ptr + at, dy * y * sig * (1.0 + zt * (1.0 - sig)),
                        mask, k_is_first | (Z_SHARED == 0), k_is_last | (Z_SHARED == 0))
            dy = dy * zt * sig

        # a_{t+1}: delta one step further along the route; 1 past the end
        next_tok, next_mask = tile_steps(i, L, offs_l + 1, ROUTE, H, W, BLOCK_L)
        dt_next, _ = tile_dt(d_rows, next_tok, sd_l, next_mask, bias, SOFTPLUS)
        dhs = scan_tile(tl.exp(dt_next * A), dy * Ct, dh, True)
        dh = pick(dhs, offs_l, 0)

        hb = hs - bb  # a_t h_{t-1}
        dhB = tl.sum(dhs * Bt, axis=1, keep_dims=True)
        ddt = tl.sum(dhs * hb * A, axis=1, keep_dims=True) + dhB * u
        if SOFTPLUS:
            ddt = ddt * tl.sigmoid(x)
        ddt = tl.where(mask, ddt, 0.0)
        dA += tl.sum(dhs * hb * dt, axis=2)
        dD += tl.sum(dy * u, axis=2, keep_dims=True)
        dbias += tl.sum(ddt, axis=2, keep_dims=True)
        at = u_row + tok[None, None, :]
        merge_store(du_acc_ptr + at, du_ptr + at, dhB * dt + Dp * dy, mask,
                    k_is_first | (U_SHARED == 0), k_is_last | (U_SHARED == 0))
        tl.store(ddelta_ptr + dd_row + tok[None, None, :],
                 ddt.to(ddelta_ptr.dtype.element_ty), mask=mask)
        at = bc_row + tok[None, None, :]
        tl.store(dB_ptr + at, tl.sum(dhs * (dt * u), axis=0, keep_dims=True), mask=n_ok & mask)
        tl.store(dC_ptr + at, tl.sum(dy * hs, axis=0, keep_dims=True), mask=n_ok & mask)

    tl.store(state_ptrs(dA_ptr, b, ch, total, 1, 0, offs_n, N), dA, mask=(offs_n < N)[None, :])
    at = (b * total + ch)[:, None, None]
    tl.store(dD_ptr + at, dD)
    tl.store(dbias_ptr + at, dbias)


@triton.jit
def scan_bwd_kernel(u_ptr, su_b, su_c, su_l, d_ptr, sd_b, sd_c, sd_l, z_ptr, sz_b, sz_c, sz_l,
                    B_ptr, sB_b, sB_g, sB_n, sB_l, C_ptr, sC_b, sC_g, sC_n, sC_l,
                    A_ptr, D_ptr, bias_ptr, states_ptr, dout_ptr, sdo_b, sdo_c, sdo_l, dlast_ptr,
                    du_ptr, du_acc_ptr, ddelta_ptr, dz_ptr, dz_acc_ptr, dB_ptr, dC_ptr,
                    dA_ptr, dD_ptr, dbias_ptr,
                    L, dim, cpg, N, n_tiles, n_slots, every, dout_scale,
                    K: tl.constexpr, ROUTES: tl.constexpr, SERIAL: tl.constexpr,
                    H: tl.constexpr, W: tl.constexpr, MERGED: tl.constexpr,
                    U_SHARED: tl.constexpr, Z_SHARED: tl.constexpr,
                    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
                    SOFTPLUS: tl.constexpr, HAS_DLAST: tl.constexpr,
                    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr):
    """Grid (batch, dim // BLOCK_D, 1 if SERIAL else K); SERIAL when K > 1 routes share u or z,
    whose gradients then add up route by route. The forward saved ``n_slots`` states per
    channel, one per forward tile; this kernel's tiles span ``every`` forward tiles."""
    b = tl.program_id(0)
    d0 = tl.program_id(1) * BLOCK_D
    for k in tl.static_range(K):
        if (tl.program_id(2) == k) | SERIAL:
            _bwd_route(b, k, d0, L, dim, K * dim, cpg, N, n_tiles, n_slots, every, dout_scale,
                       u_ptr, su_b, su_c, su_l, d_ptr, sd_b, sd_c, sd_l, z_ptr, sz_b, sz_c, sz_l,
                       B_ptr, sB_b, sB_g, sB_n, sB_l, C_ptr, sC_b, sC_g, sC_n, sC_l,
                       A_ptr, D_ptr, bias_ptr, states_ptr, dout_ptr, sdo_b, sdo_c, sdo_l,
                       dlast_ptr, du_ptr, du_acc_ptr, ddelta_ptr, dz_ptr, dz_acc_ptr, dB_ptr,
                       dC_ptr, dA_ptr, dD_ptr, dbias_ptr,
                       (ROUTES >> (2 * k)) & 3, k == 0, k == K - 1, H, W, MERGED,
                       U_SHARED, Z_SHARED, HAS_D, HAS_Z, HAS_BIAS, SOFTPLUS, HAS_DLAST,
                       BLOCK_D, BLOCK_N, BLOCK_L)
        if SERIAL:
            # the next route reads the u/z gradients this one stored, from other threads
            tl.debug_barrier()
