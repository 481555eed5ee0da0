"""Triton forward selective scan, and the tile helpers the backward shares with it.

One program owns ``BLOCK_D`` channels of one batch element (all inside one B/C group) and walks
their sequence in tiles of ``BLOCK_L`` steps. A tile holds ``(BLOCK_D, BLOCK_N, BLOCK_L)`` pairs
``(a, b) = (exp(dt A), dt u B)``; ``tl.associative_scan`` solves the recurrence inside the tile
and the state, ``(BLOCK_D, BLOCK_N)`` in registers, carries it into the next one.

A route is a constexpr code (bit 0: reversed, bit 1: column-major) and only changes which token a
step reads and writes (:func:`route_tokens`), so reverse and column routes cost no copies. Routes
whose results meet in one tensor (a merged output, or the gradient of a ``u``/``z`` shared by all
routes) run one after another in the same program, which adds its route's result to what the
previous one left: the sum always runs in route order, so it is deterministic without atomics.
"""
import triton
import triton.language as tl

#: route name -> constexpr code; bit 0 reverses the walk, bit 1 makes it column-major
ROUTE_CODES = {'forward': 0, 'reverse': 1, 'col': 2, 'col_reverse': 3}


@triton.jit
def route_tokens(steps, L, ROUTE: tl.constexpr, H: tl.constexpr, W: tl.constexpr):
    """The token each step of ``ROUTE`` visits (garbage where ``steps >= L``: masked there)."""
    if ROUTE % 2 == 1:
        steps = L - 1 - steps
    if ROUTE >= 2:
        steps = (steps % H) * W + steps // H
    return steps


@triton.jit
def combine(a1, b1, a2, b2):
    # (a1, b1) is the earlier segment: h -> a2 (a1 h + b1) + b2
    return a1 * a2, a2 * b1 + b2


@triton.jit
def scan_tile(a, b, h0, REVERSE: tl.constexpr):
    """States of a (D, N, L) tile entered with state ``h0`` (D, N) from the tile before it (the
    tile after it when ``REVERSE``)."""
    p, s = tl.associative_scan((a, b), 2, combine, reverse=REVERSE)
    return s + p * h0[:, :, None]


@triton.jit
def pick(x, offs_l, index):
    """x[:, :, index] of a (D, N, L) tile, as (D, N)."""
    return tl.sum(tl.where((offs_l == index)[None, None, :], x, 0.0), axis=2)


@triton.jit
def load_at(row_ptrs, tok, s_l, mask):
    """fp32 values of rows ``row_ptrs`` ((D, 1, 1) or (1, N, 1) pointers) at tokens ``tok``, 0
    where masked. Loading straight into 3-D lets every tile tensor keep the loads' layout."""
    return tl.load(row_ptrs + tok[None, None, :] * s_l, mask=mask, other=0.0).to(tl.float32)


@triton.jit
def softplus(x):
    return tl.where(x > 20.0, x, tl.log(1.0 + tl.exp(x)))


@triton.jit
def route_setup(b, k, d0, dim, cpg, A_ptr, D_ptr, bias_ptr, N,
                u_ptr, su_b, su_c, d_ptr, sd_b, sd_c, z_ptr, sz_b, sz_c,
                B_ptr, sB_b, sB_g, sB_n, C_ptr, sC_b, sC_g, sC_n,
                U_SHARED: tl.constexpr, Z_SHARED: tl.constexpr, HAS_D: tl.constexpr,
                HAS_BIAS: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr):
    """Row pointers and parameters of channels ``d0 + arange(BLOCK_D)`` of route ``k``, shaped
    to broadcast over (D, N, L) tiles. A shared ``u``/``z`` is read at the route-local channel:
    never repeated."""
    offs_d = d0 + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    ch = k * dim + offs_d
    mask_n = offs_n < N
    A = tl.load(A_ptr + ch[:, None] * N + offs_n[None, :], mask=mask_n[None, :], other=0.0)
    Dp = tl.load(D_ptr + ch) if HAS_D else tl.zeros([BLOCK_D], tl.float32)
    bias = tl.load(bias_ptr + ch) if HAS_BIAS else tl.zeros([BLOCK_D], tl.float32)
    u_rows = u_ptr + b * su_b + (offs_d if U_SHARED else ch)[:, None, None] * su_c
    z_rows = z_ptr + b * sz_b + (offs_d if Z_SHARED else ch)[:, None, None] * sz_c
    d_rows = d_ptr + b * sd_b + ch[:, None, None] * sd_c
    g = (k * dim + d0) // cpg
    B_rows = B_ptr + b * sB_b + g * sB_g + offs_n[None, :, None] * sB_n
    C_rows = C_ptr + b * sC_b + g * sC_g + offs_n[None, :, None] * sC_n
    return (ch, A[:, :, None], Dp[:, None, None], bias[:, None, None], u_rows, z_rows, d_rows,
            B_rows, C_rows)


@triton.jit
def tile_dt(d_rows, tok, sd_l, mask, bias, SOFTPLUS: tl.constexpr):
    """dt of a (D, 1, L) tile, 0 on masked steps so that they leave the state alone, and the
    softplus argument ``delta + delta_bias`` (the backward's sigmoid needs it)."""
    x = load_at(d_rows, tok, sd_l, mask) + bias
    dt = softplus(x) if SOFTPLUS else x
    return tl.where(mask, dt, 0.0), x


@triton.jit
def tile_pairs(u_rows, d_rows, B_rows, A, bias, tok, mask, mask_nl, su_l, sd_l, sB_l,
               SOFTPLUS: tl.constexpr):
    """u, dt, delta + delta_bias (D, 1, L), B (1, N, L) and the scan pairs a, b (D, N, L) of a
    tile; ``mask`` (1, 1, L) and ``mask_nl`` (1, N, L) mark real steps and states."""
    u = load_at(u_rows, tok, su_l, mask)
    dt, x = tile_dt(d_rows, tok, sd_l, mask, bias, SOFTPLUS)
    Bt = load_at(B_rows, tok, sB_l, mask_nl)
    return u, dt, x, Bt, tl.exp(dt * A), dt * u * Bt


@triton.jit
def merge_store(acc_ptrs, out_ptrs, val, mask, FIRST: tl.constexpr, LAST: tl.constexpr):
    """Add this route's ``val`` to the previous routes' (fp32 in ``acc_ptrs``); the last route
    stores the total in the output's dtype. With one route both flags are set."""
    if not FIRST:
        val += tl.load(acc_ptrs, mask=mask)
    if LAST:
        tl.store(out_ptrs, val.to(out_ptrs.dtype.element_ty), mask=mask)
    else:
        tl.store(acc_ptrs, val, mask=mask)


@triton.jit
def state_ptrs(ptr, b, ch, total, n_slots, slot, offs_n, width):
    """(D, N) pointers into a contiguous (batch, total, n_slots, width) fp32 state buffer."""
    return ptr + (((b * total + ch) * n_slots + slot) * width)[:, None] + offs_n[None, :]


@triton.jit
def tile_steps(i, L, offs_l, ROUTE: tl.constexpr, H: tl.constexpr, W: tl.constexpr,
               BLOCK_L: tl.constexpr):
    """Tokens of tile ``i`` of a route and its (1, 1, L) mask of real steps."""
    steps = i * BLOCK_L + offs_l
    return route_tokens(steps, L, ROUTE, H, W), (steps < L)[None, None, :]


@triton.jit
def _fwd_route(b, k, d0, L, dim, total, cpg, N, n_tiles, out_scale,
               u_ptr, su_b, su_c, su_l, d_ptr, sd_b, sd_c, sd_l, z_ptr, sz_b, sz_c, sz_l,
               B_ptr, sB_b, sB_g, sB_n, sB_l, C_ptr, sC_b, sC_g, sC_n, sC_l,
               A_ptr, D_ptr, bias_ptr, out_ptr, acc_ptr, states_ptr, last_ptr,
               ROUTE: tl.constexpr, FIRST: tl.constexpr, LAST: tl.constexpr,
               H: tl.constexpr, W: tl.constexpr, MERGED: tl.constexpr,
               U_SHARED: tl.constexpr, Z_SHARED: tl.constexpr,
               HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
               SOFTPLUS: tl.constexpr, SAVE_STATES: tl.constexpr, LAST_STATE: tl.constexpr,
               BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr):
    ch, A, Dp, bias, u_rows, z_rows, d_rows, B_rows, C_rows = route_setup(
        b, k, d0, dim, cpg, A_ptr, D_ptr, bias_ptr, N, u_ptr, su_b, su_c, d_ptr, sd_b, sd_c,
        z_ptr, sz_b, sz_c, B_ptr, sB_b, sB_g, sB_n, C_ptr, sC_b, sC_g, sC_n,
        U_SHARED, Z_SHARED, HAS_D, HAS_BIAS, BLOCK_D, BLOCK_N)
    offs_n = tl.arange(0, BLOCK_N)
    offs_l = tl.arange(0, BLOCK_L)
    n_ok = (offs_n < N)[None, :, None]
    out_ch = dim if MERGED else total
    row = (b * out_ch + (ch - k * dim if MERGED else ch))[:, None, None] * L
    h = tl.zeros([BLOCK_D, BLOCK_N], tl.float32)
    for i in range(n_tiles):
        if SAVE_STATES:
            # the backward restarts each tile from here
            tl.store(state_ptrs(states_ptr, b, ch, total, n_tiles, i, offs_n, BLOCK_N), h)
        tok, mask = tile_steps(i, L, offs_l, ROUTE, H, W, BLOCK_L)
        u, dt, x, Bt, a, bb = tile_pairs(u_rows, d_rows, B_rows, A, bias, tok, mask,
                                         n_ok & mask, su_l, sd_l, sB_l, SOFTPLUS)
        hs = scan_tile(a, bb, h, False)
        h = pick(hs, offs_l, BLOCK_L - 1)
        Ct = load_at(C_rows, tok, sC_l, n_ok & mask)
        y = tl.sum(hs * Ct, axis=1, keep_dims=True) + Dp * u
        if HAS_Z:
            zt = load_at(z_rows, tok, sz_l, mask)
            y = y * zt * tl.sigmoid(zt)
        at = row + tok[None, None, :]
        merge_store(acc_ptr + at, out_ptr + at, y * out_scale, mask, FIRST, LAST)
    if LAST_STATE:
        tl.store(state_ptrs(last_ptr, b, ch, total, 1, 0, offs_n, N), h,
                 mask=(offs_n < N)[None, :])


@triton.jit
def scan_fwd_kernel(u_ptr, su_b, su_c, su_l, d_ptr, sd_b, sd_c, sd_l, z_ptr, sz_b, sz_c, sz_l,
                    B_ptr, sB_b, sB_g, sB_n, sB_l, C_ptr, sC_b, sC_g, sC_n, sC_l,
                    A_ptr, D_ptr, bias_ptr, out_ptr, acc_ptr, states_ptr, last_ptr,
                    L, dim, cpg, N, n_tiles, out_scale,
                    K: tl.constexpr, ROUTES: tl.constexpr, SERIAL: tl.constexpr,
                    H: tl.constexpr, W: tl.constexpr, MERGED: tl.constexpr,
                    U_SHARED: tl.constexpr, Z_SHARED: tl.constexpr,
                    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
                    SOFTPLUS: tl.constexpr, SAVE_STATES: tl.constexpr, LAST_STATE: tl.constexpr,
                    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr):
    """Grid (batch, dim // BLOCK_D, 1 if SERIAL else K); SERIAL when the K > 1 routes merge.
    ``ROUTES`` packs the route codes two bits each, route k in bits 2k and 2k+1."""
    b = tl.program_id(0)
    d0 = tl.program_id(1) * BLOCK_D
    for k in tl.static_range(K):
        if (tl.program_id(2) == k) | SERIAL:
            _fwd_route(b, k, d0, L, dim, K * dim, cpg, N, n_tiles, out_scale,
                       u_ptr, su_b, su_c, su_l, d_ptr, sd_b, sd_c, sd_l, z_ptr, sz_b, sz_c, sz_l,
                       B_ptr, sB_b, sB_g, sB_n, sB_l, C_ptr, sC_b, sC_g, sC_n, sC_l,
                       A_ptr, D_ptr, bias_ptr, out_ptr, acc_ptr, states_ptr, last_ptr,
                       (ROUTES >> (2 * k)) & 3, (k == 0) | (MERGED == 0),
                       (k == K - 1) | (MERGED == 0),
                       H, W, MERGED, U_SHARED, Z_SHARED, HAS_D, HAS_Z, HAS_BIAS, SOFTPLUS,
                       SAVE_STATES, LAST_STATE, BLOCK_D, BLOCK_N, BLOCK_L)
        if SERIAL:
            # the next route reads what this one stored, from other threads
            tl.debug_barrier()
