"""The Triton selective scan: tile choice, launches and the autograd Function.

:func:`triton_selective_scan` is what :func:`kernels.selective_scan` calls for the 'triton'
backend, after its argument checks. Inputs are read through their strides (no ``.contiguous()``
copies of u, delta, z, B, C); outputs and gradients come back contiguous.
"""
import math
from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache

import torch

from .paths import ScanPaths
from .triton_bwd import scan_bwd_kernel
from .triton_fwd import ROUTE_CODES, scan_fwd_kernel

#: fewer programs than this leave most SMs idle: smaller channel blocks then
MIN_PROGRAMS = 128


@dataclass(frozen=True)
class Tiles:
    block_d: int  # channels per program: a power of two inside one route block and one B/C group
    block_n: int
    block_l: int  # scan steps per tile
    num_warps: int

    def n_tiles(self, L):
        return -(-L // self.block_l)


def _pow2(n):
    return 1 << (n - 1).bit_length()


def pick_tiles(batch, dim, cpg, N, L, programs_per_block):
    """(forward, backward) tiles, measured on an H100 (tools/benchmark_scan.py). With a state
    vector per channel (N >= 8) several channels per program and short tiles win, the backward
    taking twice the forward's channels (fewer B/C partial sums to add up); with N of 1 to 4 long
    tiles of one or two channels win. The backward's tiles must span whole forward tiles: it
    restarts from the states saved at those."""
    block_n = _pow2(N)
    common = math.gcd(dim, cpg)
    fits = common & -common  # largest power of two inside one route block and one group

    def tiles(block_d, pairs, num_warps):
        block_d = min(block_d, fits)
        while block_d > 1 and batch * (dim // block_d) * programs_per_block < MIN_PROGRAMS:
            block_d //= 2
        block_l = max(16, min(pairs // (block_d * block_n), _pow2(L)))
        return Tiles(block_d, block_n, block_l, num_warps)

    if block_n >= 8:
        fwd = tiles(4, 2048, 2 if block_n >= 16 else 4)
        bwd = tiles(8, 4096, 4)
    else:
        fwd = tiles(2, 1024, 4)
        bwd = tiles(1, 1024, 4)
    return fwd, Tiles(bwd.block_d, block_n, max(bwd.block_l, fwd.block_l), bwd.num_warps)


@dataclass(frozen=True)
class _Problem:
    """Shapes and flags shared by the forward and backward launches."""
    batch: int
    dim: int
    K: int
    N: int
    L: int
    G: int
    routes: int  # route codes packed two bits each
    hw: tuple
    merge: str
    u_shared: bool
    z_shared: bool
    softplus: bool
    fwd_tiles: Tiles
    bwd_tiles: Tiles

    @property
    def total(self):
        return self.K * self.dim

    def grid(self, tiles, serial):
        return (self.batch, self.dim // tiles.block_d, 1 if serial else self.K)

    def constexprs(self, tiles, serial, **flags):
        H, W = self.hw or (1, 1)
        return dict(K=self.K, ROUTES=self.routes, SERIAL=serial, H=H, W=W,
                    MERGED=self.merge is not None, U_SHARED=self.u_shared,
                    Z_SHARED=self.z_shared, SOFTPLUS=self.softplus, BLOCK_D=tiles.block_d,
                    BLOCK_N=tiles.block_n, BLOCK_L=tiles.block_l, num_warps=tiles.num_warps,
                    **flags)


@lru_cache(maxsize=256)
def _problem(batch, total, L, N, G, u_ch, z_ch, delta_softplus, paths: ScanPaths):
    """Cached: a layer calls with the same shapes every step, and Python time per call adds up
    against kernels of tens of microseconds."""
    K = paths.num_routes
    dim = total // K
    cpg = total // G
    serial_fwd = paths.merge is not None and K > 1
    u_shared = u_ch != total
    z_shared = z_ch is not None and z_ch != total
    # the backward serialises routes when they share u or z; take the tighter of both grids
    serial = serial_fwd or ((u_shared or z_shared) and K > 1)
    fwd, bwd = pick_tiles(batch, dim, cpg, N, L, 1 if serial else K)
    assert bwd.block_l % fwd.block_l == 0, (fwd, bwd)
    # the kernels index the buffers they write with 32-bit offsets
    largest = max(batch * total * L, batch * total * fwd.n_tiles(L) * fwd.block_n,
                  batch * (total // bwd.block_d) * N * L)
    if largest >= 2**31:
        raise ValueError(f'selective_scan: (batch={batch}, channels={total}, L={L}, N={N}) needs '
                         f'buffers of {largest} elements, past the Triton kernels\' 32-bit '
                         f'offsets; split the batch')
    routes = sum(ROUTE_CODES[r] << (2 * k) for k, r in enumerate(paths.routes))
    return _Problem(batch, dim, K, N, L, G, routes, paths.hw, paths.merge, u_shared, z_shared,
                    delta_softplus, fwd, bwd)


def _inputs(u, delta, A, B, C, D, z, delta_bias):
    """The leading kernel arguments both kernels share: pointers and strides of the inputs
    (``u`` stands in for absent optional ones, which the constexpr flags keep unread)."""
    zz = u if z is None else z
    return (u, *u.stride(), delta, *delta.stride(), zz, *zz.stride(), B, *B.stride(), C,
            *C.stride(), A.contiguous(), u if D is None else D.contiguous(),
            u if delta_bias is None else delta_bias.contiguous())


def _fp32_scratch(final, accumulate):
    """Where routes add up a shared result: ``final`` itself when it is fp32."""
    if not accumulate or final.dtype == torch.float32:
        return final
    return torch.empty(final.shape, device=final.device, dtype=torch.float32)


def _forward(p: _Problem, args, has_d, has_z, has_bias, out_dtype, save_states, device):
    batch, dim, total, L, N = p.batch, p.dim, p.total, p.L, p.N
    out = torch.empty(batch, dim if p.merge else total, L, device=device, dtype=out_dtype)
    acc = _fp32_scratch(out, p.merge is not None and p.K > 1)
    last = torch.empty(batch, total, N, device=device, dtype=torch.float32)
    tiles = p.fwd_tiles
    states = (torch.empty(batch, total, tiles.n_tiles(L), tiles.block_n, device=device,
                          dtype=torch.float32) if save_states else last)
    serial = p.merge is not None and p.K > 1
    scale = 1.0 / p.K if p.merge == 'mean' else 1.0
    scan_fwd_kernel[p.grid(tiles, serial)](
        *args, out, acc, states, last, L, dim, total // p.G, N, tiles.n_tiles(L), scale,
        **p.constexprs(tiles, serial, HAS_D=has_d, HAS_Z=has_z, HAS_BIAS=has_bias,
                       SAVE_STATES=save_states, LAST_STATE=True))
    return out, last, states


def _backward(p: _Problem, args, saved, states, dout, dlast):
    u, delta, A, B, C, D, z, delta_bias = saved
    batch, dim, total, L, N = p.batch, p.dim, p.total, p.L, p.N
    serial = (p.u_shared or p.z_shared) and p.K > 1
    du = torch.empty(u.shape, device=u.device, dtype=u.dtype)
    du_acc = _fp32_scratch(du, p.u_shared and p.K > 1)
    ddelta = torch.empty(delta.shape, device=u.device, dtype=delta.dtype)
    dz = du if z is None else torch.empty(z.shape, device=u.device, dtype=z.dtype)
    dz_acc = _fp32_scratch(dz, p.z_shared and p.K > 1)
    f32 = dict(device=u.device, dtype=torch.float32)
    tiles = p.bwd_tiles
    n_parts = total // tiles.block_d
    dB = torch.empty(batch, n_parts, N, L, **f32)
    dC = torch.empty(batch, n_parts, N, L, **f32)
    dA = torch.empty(batch, total, N, **f32)
    dD = torch.empty(batch, total, **f32)
    dbias = torch.empty(batch, total, **f32)
    scale = 1.0 / p.K if p.merge == 'mean' else 1.0
    scan_bwd_kernel[p.grid(tiles, serial)](
        *args, states, dout, *dout.stride(), dlast if dlast is not None else dA,
        du, du_acc, ddelta, dz, dz_acc, dB, dC, dA, dD, dbias,
        L, dim, total // p.G, N, tiles.n_tiles(L), states.shape[2],
        tiles.block_l // p.fwd_tiles.block_l, scale,
        **p.constexprs(tiles, serial, HAS_D=D is not None, HAS_Z=z is not None,
                       HAS_BIAS=delta_bias is not None, HAS_DLAST=dlast is not None))
    # fixed-order sums of the per-block and per-batch partials
    dB = dB.view(batch, p.G, n_parts // p.G, N, L).sum(2).to(B.dtype)
    dC = dC.view(batch, p.G, n_parts // p.G, N, L).sum(2).to(C.dtype)
    return (du, ddelta, dA.sum(0), dB, dC, None if D is None else dD.sum(0),
            None if z is None else dz, None if delta_bias is None else dbias.sum(0))


class SelectiveScanFn(torch.autograd.Function):

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus, paths, out_dtype):
        B4 = B if B.dim() == 4 else B.unsqueeze(1)
        C4 = C if C.dim() == 4 else C.unsqueeze(1)
        p = _problem(*delta.shape, A.shape[1], B4.shape[1], u.shape[1],
                     None if z is None else z.shape[1], delta_softplus, paths)
        save = any(ctx.needs_input_grad[:8])
        with torch.cuda.device(u.device) if u.is_cuda else nullcontext():
            out, last, states = _forward(p, _inputs(u, delta, A, B4, C4, D, z, delta_bias),
                                         D is not None, z is not None, delta_bias is not None,
                                         out_dtype, save, u.device)
        ctx.problem = p
        ctx.b_dims = (B.dim(), C.dim())
        ctx.save_for_backward(u, delta, A, B4, C4, D, z, delta_bias, states)
        return out, last

    @staticmethod
    def backward(ctx, dout, dlast):
        u, delta, A, B, C, D, z, delta_bias, states = ctx.saved_tensors
        saved = (u, delta, A, B, C, D, z, delta_bias)
        with torch.cuda.device(u.device) if u.is_cuda else nullcontext():
            du, ddelta, dA, dB, dC, dD, dz, dbias = _backward(
                ctx.problem, _inputs(*saved), saved, states, dout, dlast)
        if ctx.b_dims[0] == 3:
            dB = dB.squeeze(1)
        if ctx.b_dims[1] == 3:
            dC = dC.squeeze(1)
        return du, ddelta, dA, dB, dC, dD, dz, dbias, None, None, None


def triton_selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state,
                          paths: ScanPaths, out_dtype):
    out, last = SelectiveScanFn.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus, paths,
                                      out_dtype)
    return (out, last) if return_last_state else out
