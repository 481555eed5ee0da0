"""The Triton selective scan: tile choice, launches and the autograd Function.

:func:`triton_selective_scan` is what :func:`kernels.selective_scan` calls for the 'triton'
backend, after its argument checks. Inputs are read through their strides (no ``.contiguous()``
copies of u, delta, z, B, C); outputs and gradients come back contiguous.
"""
import math
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import triton

from .paths import ScanPaths
from .triton_bwd import scan_bwd_kernel
from .triton_fwd import ROUTE_CODES, scan_fwd_kernel

#: programs below which the grid leaves SMs idle on a large GPU; smaller channel blocks then
MIN_PROGRAMS = 1024


@dataclass(frozen=True)
class Tiles:
    block_d: int  # channels per program: a power of two inside one route block and one B/C group
    block_n: int
    block_l: int  # scan steps per tile; the forward saves one state per tile for the backward
    num_warps: int


def pick_tiles(batch, dim, cpg, N, L, programs_per_block) -> Tiles:
    """Largest channel block (B/C gradients are summed inside it) that still gives enough
    programs, and about 2048 scan pairs per tile."""
    block_n = triton.next_power_of_2(N)
    common = math.gcd(dim, cpg)
    block_d = min(common & -common, max(1, 64 // block_n))
    while block_d > 1 and batch * (dim // block_d) * programs_per_block < MIN_PROGRAMS:
        block_d //= 2
    block_l = max(16, min(2048 // (block_d * block_n), triton.next_power_of_2(L)))
    return Tiles(block_d, block_n, block_l, num_warps=4)


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
    tiles: Tiles

    @property
    def total(self):
        return self.K * self.dim

    @property
    def n_tiles(self):
        return triton.cdiv(self.L, self.tiles.block_l)

    def grid(self, serial):
        return (self.batch, self.dim // self.tiles.block_d, 1 if serial else self.K)

    def constexprs(self, serial, **flags):
        H, W = self.hw or (1, 1)
        return dict(K=self.K, ROUTES=self.routes, SERIAL=serial, H=H, W=W,
                    MERGED=self.merge is not None, U_SHARED=self.u_shared,
                    Z_SHARED=self.z_shared, SOFTPLUS=self.softplus, BLOCK_D=self.tiles.block_d,
                    BLOCK_N=self.tiles.block_n, BLOCK_L=self.tiles.block_l,
                    num_warps=self.tiles.num_warps, **flags)


def _problem(u, delta, A, B, z, delta_softplus, paths: ScanPaths):
    batch, total, L = delta.shape
    K = paths.num_routes
    dim = total // K
    G = B.shape[1]
    cpg = total // G
    serial_fwd = paths.merge is not None and K > 1
    u_shared = u.shape[1] != total
    z_shared = z is not None and z.shape[1] != total
    # the backward serialises routes when they share u or z; take the tighter of both grids
    serial = serial_fwd or ((u_shared or z_shared) and K > 1)
    tiles = pick_tiles(batch, dim, cpg, A.shape[1], L, 1 if serial else K)
    routes = sum(ROUTE_CODES[r] << (2 * k) for k, r in enumerate(paths.routes))
    return _Problem(batch, dim, K, A.shape[1], L, G, routes, paths.hw, paths.merge, u_shared,
                    z_shared, delta_softplus, tiles)


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
    states = (torch.empty(batch, total, p.n_tiles, p.tiles.block_n, device=device,
                          dtype=torch.float32) if save_states else last)
    serial = p.merge is not None and p.K > 1
    scale = 1.0 / p.K if p.merge == 'mean' else 1.0
    scan_fwd_kernel[p.grid(serial)](
        *args, out, acc, states, last, L, dim, total // p.G, N, p.n_tiles, scale,
        **p.constexprs(serial, HAS_D=has_d, HAS_Z=has_z, HAS_BIAS=has_bias,
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
    n_parts = total // p.tiles.block_d
    dB = torch.empty(batch, n_parts, N, L, **f32)
    dC = torch.empty(batch, n_parts, N, L, **f32)
    dA = torch.empty(batch, total, N, **f32)
    dD = torch.empty(batch, total, **f32)
    dbias = torch.empty(batch, total, **f32)
    scale = 1.0 / p.K if p.merge == 'mean' else 1.0
    scan_bwd_kernel[p.grid(serial)](
        *args, states, dout, *dout.stride(), dlast if dlast is not None else dA,
        du, du_acc, ddelta, dz, dz_acc, dB, dC, dA, dD, dbias,
        L, dim, total // p.G, N, p.n_tiles, scale,
        **p.constexprs(serial, HAS_D=D is not None, HAS_Z=z is not None,
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
        p = _problem(u, delta, A, B4, z, delta_softplus, paths)
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
