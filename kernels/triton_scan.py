"""The Triton selective scan: tile choice, launch plans and the custom ops with their autograd.

:func:`triton_selective_scan` is what :func:`kernels.selective_scan` calls for the 'triton'
backend, after its argument checks. Paths of row routes only (forward, reverse: Vim,
MambaVision) run the time-in-thread kernels of :mod:`.triton_fwd_rows` / :mod:`.triton_bwd_rows`;
paths with column routes (VMamba) the tile kernels of :mod:`.triton_fwd` / :mod:`.triton_bwd`.
Inputs are read through their strides (no ``.contiguous()`` copies of u, delta, z, B, C);
outputs and gradients come back contiguous.
"""
import math
from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache
from typing import List, Optional, Tuple

import torch
from torch.library import triton_op, wrap_triton
from triton.runtime.interpreter import InterpretedFunction

from .paths import ScanPaths
from .triton_bwd import scan_bwd_kernel
from .triton_bwd_rows import scan_bwd_rows_kernel
from .triton_fwd import ROUTE_CODES, scan_fwd_kernel
from .triton_fwd_rows import scan_fwd_rows_kernel

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
class RowTiles:
    """The forward of routes along the token axis (:mod:`.triton_fwd_rows`): one warp of
    ``block_d`` channels x ``groups`` state groups, ``vector`` tokens (16 bytes) per step."""
    block_d: int
    groups: int
    vector: int


def pick_row_tiles(dim, cpg, block_n, itemsize):
    """Four groups of states per channel when there are 16 or more (4 states per thread keep
    y's cross-lane sum to 2 shuffle levels per 4 element-steps), else one state per lane; the
    rest of the warp's 32 lanes go to channels."""
    groups = 4 if block_n >= 16 else block_n
    common = math.gcd(dim, cpg)
    return RowTiles(min(32 // groups, common & -common), groups, 16 // itemsize)


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
    rows: Optional[RowTiles]  # the forward of row routes; None: the tile kernel for all routes

    @property
    def save_every(self):
        """Route steps between the states the forward saves for the backward."""
        return self.rows.vector if self.rows else self.fwd_tiles.block_l

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
def _problem(batch, total, L, N, G, u_ch, z_ch, delta_softplus, routes, hw, merge, itemsize):
    """The launch plan of one call signature (``routes`` route codes, ``hw`` (H, W) or (),
    ``merge`` '' for none), cached: a layer calls with the same shapes every step, and Python
    time per call adds up against kernels of tens of microseconds."""
    K = len(routes)
    merge = merge or None
    dim = total // K
    cpg = total // G
    serial_fwd = merge is not None and K > 1
    u_shared = u_ch != total
    z_shared = z_ch is not None and z_ch != total
    # the backward serialises routes when they share u or z; take the tighter of both grids
    serial = serial_fwd or ((u_shared or z_shared) and K > 1)
    fwd, bwd = pick_tiles(batch, dim, cpg, N, L, 1 if serial else K)
    assert bwd.block_l % fwd.block_l == 0, (fwd, bwd)
    packed = sum(code << (2 * k) for k, code in enumerate(routes))
    rows = (None if any(code & 2 for code in routes)
            else pick_row_tiles(dim, cpg, fwd.block_n, itemsize))
    # the kernels index the buffers they write with 32-bit offsets
    step, block_d = (rows.vector, rows.block_d) if rows else (fwd.block_l, bwd.block_d)
    largest = max(batch * total * L, batch * total * -(-L // step) * fwd.block_n,
                  batch * (total // block_d) * N * L)
    if largest >= 2**31:
        raise ValueError(f'selective_scan: (batch={batch}, channels={total}, L={L}, N={N}) needs '
                         f'buffers of {largest} elements, past the Triton kernels\' 32-bit '
                         f'offsets; split the batch')
    return _Problem(batch, dim, K, N, L, G, packed, tuple(hw) or None, merge, u_shared, z_shared,
                    delta_softplus, fwd, bwd, rows)


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


def _on_device(u):
    return torch.cuda.device(u.device) if u.is_cuda else nullcontext()


Tensor = torch.Tensor
Opt = Optional[torch.Tensor]


def _plan(u, delta, A, B, C, z, delta_softplus, routes, hw, merge):
    return _problem(*delta.shape, A.shape[1], B.shape[1], u.shape[1],
                    None if z is None else z.shape[1], delta_softplus, tuple(routes), tuple(hw),
                    merge, u.element_size())


# Custom ops with their autograd, so torch.compile traces a backbone through the scan without a
# graph break (and can see the kernels: triton_op). B and C are (batch, G, N, L); ``routes`` are
# ROUTE_CODES, ``hw`` (H, W) or [], ``merge`` '' for none. Absent outputs are empty tensors:
# an op returns tensors only, and none may alias another.
def _fwd(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Opt, z: Opt,
         delta_bias: Opt, delta_softplus: bool, routes: List[int], hw: List[int], merge: str,
         out_dtype: torch.dtype, save_states: bool) -> Tuple[Tensor, Tensor, Tensor]:
    """Output, last state and (with ``save_states``) the states the backward restarts from."""
    p = _plan(u, delta, A, B, C, z, delta_softplus, routes, hw, merge)
    batch, dim, total, L, N = p.batch, p.dim, p.total, p.L, p.N
    device = u.device
    out = torch.empty(batch, dim if p.merge else total, L, device=device, dtype=out_dtype)
    acc = _fp32_scratch(out, p.merge is not None and p.K > 1)
    last = torch.empty(batch, total, N, device=device, dtype=torch.float32)
    # the tiles (or vectors) of a route, and a saved state at the start of each
    n_slots = -(-L // p.save_every)
    states = torch.empty(batch, total, n_slots if save_states else 0, p.fwd_tiles.block_n,
                         device=device, dtype=torch.float32)
    serial = p.merge is not None and p.K > 1
    scale = 1.0 / p.K if p.merge == 'mean' else 1.0
    args = (*_inputs(u, delta, A, B, C, D, z, delta_bias), out, acc,
            states if save_states else last, last, L, dim, total // p.G, N, n_slots, scale)
    flags = dict(HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
                 SAVE_STATES=save_states)
    with _on_device(u):
        if p.rows:
            r = p.rows
            wrap_triton(scan_fwd_rows_kernel)[(dim // r.block_d, batch, 1 if serial else p.K)](
                *args, K=p.K, ROUTES=p.routes, SERIAL=serial, MERGED=p.merge is not None,
                U_SHARED=p.u_shared, Z_SHARED=p.z_shared, SOFTPLUS=p.softplus,
                EVEN_N=N == p.fwd_tiles.block_n, BLOCK_D=r.block_d, BLOCK_N=p.fwd_tiles.block_n,
                G=r.groups, T=r.vector, num_warps=1, **flags)
        else:
            wrap_triton(scan_fwd_kernel)[p.grid(p.fwd_tiles, serial)](
                *args, **p.constexprs(p.fwd_tiles, serial, LAST_STATE=True, **flags))
    return out, last, states


def _bwd(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Opt, z: Opt,
         delta_bias: Opt, states: Tensor, dout: Tensor, dlast: Opt, delta_softplus: bool,
         routes: List[int], hw: List[int], merge: str) -> List[Tensor]:
    """Gradients of u, delta, A, B, C, D, z, delta_bias (empty for an absent D, z, delta_bias)."""
    p = _plan(u, delta, A, B, C, z, delta_softplus, routes, hw, merge)
    batch, dim, total, L, N = p.batch, p.dim, p.total, p.L, p.N
    serial = (p.u_shared or p.z_shared) and p.K > 1
    du = torch.empty(u.shape, device=u.device, dtype=u.dtype)
    du_acc = _fp32_scratch(du, p.u_shared and p.K > 1)
    ddelta = torch.empty(delta.shape, device=u.device, dtype=delta.dtype)
    dz = du.new_empty(0) if z is None else torch.empty(z.shape, device=u.device, dtype=z.dtype)
    dz_acc = _fp32_scratch(dz, p.z_shared and p.K > 1)
    f32 = dict(device=u.device, dtype=torch.float32)
    tiles = p.bwd_tiles
    n_parts = total // (p.rows.block_d if p.rows else tiles.block_d)
    dB = torch.empty(batch, n_parts, N, L, **f32)
    dC = torch.empty(batch, n_parts, N, L, **f32)
    dA = torch.empty(batch, total, N, **f32)
    dD = torch.empty(batch, total, **f32)
    dbias = torch.empty(batch, total, **f32)
    scale = 1.0 / p.K if p.merge == 'mean' else 1.0
    args = (*_inputs(u, delta, A, B, C, D, z, delta_bias), states, dout, *dout.stride(),
            dA if dlast is None else dlast, du, du_acc, ddelta, du if z is None else dz,
            du_acc if z is None else dz_acc, dB, dC, dA, dD, dbias, L, dim, total // p.G, N)
    flags = dict(HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
                 HAS_DLAST=dlast is not None)
    with _on_device(u):
        if p.rows:
            r = p.rows
            wrap_triton(scan_bwd_rows_kernel)[(dim // r.block_d, batch, 1 if serial else p.K)](
                *args, states.shape[2], scale, K=p.K, ROUTES=p.routes, SERIAL=serial,
                MERGED=p.merge is not None, U_SHARED=p.u_shared, Z_SHARED=p.z_shared,
                SOFTPLUS=p.softplus, EVEN_N=N == p.fwd_tiles.block_n, BLOCK_D=r.block_d,
                BLOCK_N=p.fwd_tiles.block_n, G=r.groups, T=r.vector, num_warps=1, **flags)
        else:
            wrap_triton(scan_bwd_kernel)[p.grid(tiles, serial)](
                *args, tiles.n_tiles(L), states.shape[2], tiles.block_l // p.save_every, scale,
                **p.constexprs(tiles, serial, **flags))
    # fixed-order sums of the per-block and per-batch partials
    return [du, ddelta, dA.sum(0),
            dB.view(batch, p.G, n_parts // p.G, N, L).sum(2).to(B.dtype),
            dC.view(batch, p.G, n_parts // p.G, N, L).sum(2).to(C.dtype),
            du.new_empty(0) if D is None else dD.sum(0), dz,
            du.new_empty(0) if delta_bias is None else dbias.sum(0)]


scan_triton_fwd = triton_op('mmssm::scan_triton_fwd', _fwd, mutates_args=())
scan_triton_bwd = triton_op('mmssm::scan_triton_bwd', _bwd, mutates_args=())


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs[:8], output[2])
    ctx.flags = inputs[8:12]


def _backward(ctx, dout, dlast, dstates):
    *saved, states = ctx.saved_tensors
    grads = scan_triton_bwd(*saved, states, dout, dlast, *ctx.flags)
    # D, z and delta_bias are optional: no gradient where they were absent
    return (*(None if t is None else g for t, g in zip(saved, grads)), None, None, None, None,
            None, None)


scan_triton_fwd.register_autograd(_backward, setup_context=_setup_context)


def _interpreted():
    return isinstance(scan_fwd_kernel, InterpretedFunction)


def triton_selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state,
                          paths: ScanPaths, out_dtype):
    if not (u.is_cuda or _interpreted()):
        raise ValueError(f"selective_scan: backend='triton' needs CUDA tensors, got {u.device} "
                         f"ones; use backend='torch' (or 'auto') for them, or set "
                         f"TRITON_INTERPRET=1 before importing triton to run the kernels in "
                         f"Triton's (slow) interpreter")
    save = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (u, delta, A, B, C, D, z, delta_bias))
    out, last, _ = scan_triton_fwd(
        u, delta, A, B if B.dim() == 4 else B.unsqueeze(1), C if C.dim() == 4 else C.unsqueeze(1),
        D, z, delta_bias, delta_softplus, [ROUTE_CODES[r] for r in paths.routes],
        list(paths.hw or ()), paths.merge or '', out_dtype, save)
    return (out, last) if return_last_state else out
