"""The Triton selective scan: launch plans and the custom ops with their autograd.

:func:`triton_selective_scan` is what :func:`kernels.selective_scan` calls for the 'triton'
backend, after its argument checks. Every route runs the chunked, time-in-thread kernels of
:mod:`.triton_fwd` / :mod:`.triton_bwd`: one launch forward, one backward (plus fixed-order sums
of its partials). Inputs are read through their strides (no ``.contiguous()`` copies of u, delta,
z, B, C); outputs and gradients come back contiguous. Nothing on the host depends on values (no
synchronisation, allocations sized by shapes only), so a CUDA graph can capture the calls.
"""
import math
import os
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import lru_cache
from typing import List, Optional, Tuple

import torch
from torch.library import triton_op, wrap_triton
from triton.runtime.interpreter import InterpretedFunction

from .paths import ROUTE_CODES, ScanPaths
from .triton_bwd import reduce_partials_kernel, scan_bwd_kernel
from .triton_fwd import scan_fwd_kernel

#: threads that keep 4 warps resident on each of an H100's 132 x 4 schedulers: sequences are
#: cut into chunks across lanes until a launch has this many
TARGET_THREADS = 4 * 4 * 132 * 32
#: most chunks per route: the carry fold walks about 2 sqrt(chunks) summaries per thread
MAX_CHUNKS = 1024
#: registers per thread: 128 keeps 16 warps (4 per scheduler) resident on an SM
MAX_REGISTERS = 128
#: elements of a reduced gradient per program of the backward's second launch
REDUCE_BLOCK = 512


def _pow2(n):
    return 1 << max(0, n - 1).bit_length()


@dataclass(frozen=True)
class Chunks:
    """How a kind of route (rows along the token axis, or columns of the grid) is cut: ``rc``
    chunk rows (a power of two; the last ones may be padding), ``cl`` route steps per chunk
    walked ``vec`` at a time, ``ss`` chunks per segment of the carry fold; ``tail`` 1 where a
    row's last vector is partial (the kernels walk it apart)."""
    rc: int
    cl: int
    vec: int
    tail: int = 0

    @property
    def ss(self):
        return 1 << ((self.rc.bit_length() - 1 + 1) // 2)

    @property
    def sums(self):
        """fp32 summaries per (channel, state): P, S, Q per chunk, 2 x 2 totals per segment."""
        return 3 * self.rc + 4 * (self.rc // self.ss)

    @property
    def slots(self):
        """Walk iterations of all chunks: the backward's saved entry states."""
        return self.rc * (self.cl // self.vec + self.tail)


def _row_chunks(L, vec, want):
    cl = -(-max(L, 1) // max(1, min(want, MAX_CHUNKS)))
    cl = -(-cl // vec) * vec
    return Chunks(_pow2(-(-max(L, 1) // cl)), cl, vec, int(L % vec != 0))


def _col_chunks(H, W, want, per_thread):
    """Chunks of ``H // nb`` rows of one column, ``nb`` a divisor of H, so that the chunks of
    neighbouring columns (``per_thread`` to a thread) fill about ``want`` threads."""
    target = max(W, min(want * per_thread, MAX_CHUNKS))
    nb = max(d for d in range(1, H + 1) if H % d == 0 and (d == 1 or d * W <= target))
    return Chunks(_pow2(nb * W), H // nb, 1), nb


@dataclass(frozen=True)
class Tiles:
    """One kernel's tiles: ``block_d`` channels per program, a channel's states over ``groups``
    lanes, the chunks of row and column routes (``nb`` chunks per column), warps per program."""
    block_d: int
    groups: int
    rows: Chunks
    cols: Chunks
    nb: int
    per_thread: int  # chunks of neighbouring columns a thread walks side by side
    num_warps: int
    narrow: bool  # fewer columns per thread than a 16-byte vector holds


#: set by :func:`wide_interpreter_tiles`
_WIDE = False


@contextmanager
def wide_interpreter_tiles():
    """Inside: every kernel program takes the widest channel tile (all channels a route's B and C
    group shares, up to a power of two) instead of the few an H100 program holds. For Triton's
    interpreter only (TRITON_INTERPRET=1), which runs one program after another at about a second
    each: the same kernels run in some 20x fewer programs. What the scan returns and keeps does
    not depend on the tiles (the benchmark's saved-activation meter on the Triton path runs in
    it); the tests check the H100's tiles, outside it."""
    global _WIDE
    if os.environ.get('TRITON_INTERPRET') != '1':
        raise RuntimeError('wide_interpreter_tiles() is for Triton\'s interpreter: set '
                           'TRITON_INTERPRET=1 (on a GPU the tiles are sized for its registers)')
    plan_of.cache_clear()
    _WIDE = True
    try:
        yield
    finally:
        _WIDE = False
        plan_of.cache_clear()


def _tiles(batch, dim, cpg, L, hw, has_cols, sequences, block_n, itemsize, vec,
           states_per_thread):
    groups = max(1, block_n // states_per_thread)
    want = max(1, _pow2(-(-TARGET_THREADS // sequences)) // groups)
    rows = _row_chunks(L, vec, want)
    cols, nb = _col_chunks(*hw, want, vec) if has_cols else (Chunks(1, 1, 1), 1)
    lanes = max(rows.rc, -(-cols.rc // vec)) * groups  # threads per channel
    common = math.gcd(dim, cpg)
    block_d = common & -common if _WIDE else max(1, min(common & -common, 32 // lanes))
    return Tiles(block_d, groups, rows, cols, nb, vec, max(1, min(8, block_d * lanes // 32)),
                 vec * itemsize < 16)


@dataclass(frozen=True)
class Plan:
    """The launch plan of one call signature: shapes, flags and each kernel's tiles."""
    batch: int
    dim: int
    K: int
    N: int
    L: int
    G: int
    routes: int  # route codes packed two bits each
    hw: tuple
    merge: Optional[str]
    u_shared: bool
    z_shared: bool
    softplus: bool
    serial: bool  # the routes run one after another in a program (merged, or sharing u or z)
    block_n: int
    fwd: Tiles
    bwd: Tiles

    @property
    def total(self):
        return self.K * self.dim

    def grid(self, t: Tiles):
        return (self.dim // t.block_d, self.batch, 1 if self.serial else self.K)

    def kinds(self, t: Tiles):
        codes = [(self.routes >> (2 * k)) & 3 for k in range(self.K)]
        return [t.cols if code & 2 else t.rows for code in codes]

    def sums_w(self, t: Tiles):
        return max(c.sums for c in self.kinds(t))

    def slots(self, t: Tiles):
        return max(c.slots for c in self.kinds(t))

    def constexprs(self, t: Tiles, **flags):
        H, W = self.hw or (1, 1)
        return dict(K=self.K, ROUTES=self.routes, SERIAL=self.serial,
                    MERGED=self.merge is not None, U_SHARED=self.u_shared,
                    Z_SHARED=self.z_shared, SOFTPLUS=self.softplus, BLOCK_D=t.block_d,
                    BLOCK_N=self.block_n, G=t.groups, V=t.rows.vec, RC_R=t.rows.rc,
                    CL_R=t.rows.cl, SS_R=t.rows.ss, RC_C=t.cols.rc, CL_C=t.cols.cl,
                    SS_C=t.cols.ss, TAIL_R=t.rows.tail, NB=t.nb, CPT=t.per_thread if t.narrow else 0, W=W,
                    num_warps=t.num_warps, maxnreg=MAX_REGISTERS, **flags)


@lru_cache(maxsize=256)
def plan_of(batch, total, L, N, G, u_ch, z_ch, delta_softplus, routes, hw, merge, itemsize):
    """The plan of one call signature (``routes`` route codes, ``hw`` (H, W) or (), ``merge`` ''
    for none), cached: a layer calls with the same shapes every step, and Python time per call
    adds up against kernels of tens of microseconds."""
    K = len(routes)
    merge = merge or None
    dim = total // K
    u_shared = u_ch != total
    z_shared = z_ch is not None and z_ch != total
    serial = K > 1 and (merge is not None or u_shared or z_shared)
    block_n = _pow2(N)
    sequences = max(1, batch * dim * (1 if serial else K))
    common = (batch, dim, total // G, L, hw, any(code & 2 for code in routes), sequences, block_n,
              itemsize)
    # the forward: 16-byte vectors, 4 states per thread (y's sum over the groups costs
    # log2(groups) shuffles per 4 element-steps); the backward holds about twice the values per
    # element: 8-byte vectors and 2 states per thread keep it within 128 registers; so do 2
    # states per thread in a forward that runs several routes in a program (Vim's two
    # directions: each peels its rows' partial last vector, and ptxas spills with 4)
    fwd = _tiles(*common, 16 // itemsize, 2 if serial else 4)
    bwd = _tiles(*common, max(1, 8 // itemsize), 2)
    packed = sum(code << (2 * k) for k, code in enumerate(routes))
    plan = Plan(batch, dim, K, N, L, G, packed, tuple(hw) or None, merge, u_shared, z_shared,
                delta_softplus, serial, block_n, fwd, bwd)
    # the kernels index the buffers they write with 32-bit offsets
    largest = max(batch * total * L, batch * total * plan.slots(bwd) * block_n,
                  batch * (total // bwd.block_d) * N * L)
    if largest >= 2**31:
        raise ValueError(f'selective_scan: (batch={batch}, channels={total}, L={L}, N={N}) needs '
                         f'buffers of {largest} elements, past the Triton kernels\' 32-bit '
                         f'offsets; split the batch')
    return plan


def _inputs(u, delta, A, B, C, D, z, delta_bias):
    """The leading kernel arguments both kernels share: pointers and strides of the inputs
    (``u`` stands in for absent optional ones, which the constexpr flags keep unread)."""
    zz = u if z is None else z
    return (u, *u.stride(), delta, *delta.stride(), zz, *zz.stride(), B, *B.stride(), C,
            *C.stride(), A.contiguous(), u if D is None else D.contiguous(),
            u if delta_bias is None else delta_bias.contiguous())


def _fp32(device, *shapes):
    """fp32 scratch tensors of ``shapes``, views of one allocation."""
    sizes = [math.prod(s) for s in shapes]
    flat = torch.empty(sum(sizes), device=device, dtype=torch.float32)
    return [part.view(s) for part, s in zip(flat.split(sizes), shapes)]


def _on_device(u):
    return torch.cuda.device(u.device) if u.is_cuda else nullcontext()


Tensor = torch.Tensor
Opt = Optional[torch.Tensor]


def _plan(u, delta, A, B, z, delta_softplus, routes, hw, merge):
    return plan_of(*delta.shape, A.shape[1], B.shape[1], u.shape[1],
                   None if z is None else z.shape[1], delta_softplus, tuple(routes), tuple(hw),
                   merge, u.element_size())


# Custom ops with their autograd, so torch.compile traces a backbone through the scan without a
# graph break (and can see the kernels: triton_op). B and C are (batch, G, N, L); ``routes`` are
# ROUTE_CODES, ``hw`` (H, W) or [], ``merge`` '' for none. Absent outputs are empty tensors:
# an op returns tensors only, and none may alias another.
def _fwd(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Opt, z: Opt,
         delta_bias: Opt, delta_softplus: bool, routes: List[int], hw: List[int], merge: str,
         out_dtype: torch.dtype) -> Tuple[Tensor, Tensor]:
    """Output and last state; nothing is kept for the backward but the inputs."""
    p = _plan(u, delta, A, B, z, delta_softplus, routes, hw, merge)
    batch, total, L, N = p.batch, p.total, p.L, p.N
    out = torch.empty(batch, p.dim if p.merge else total, L, device=u.device, dtype=out_dtype)
    last = torch.empty(batch, total, N, device=u.device, dtype=torch.float32)
    accumulate = p.merge is not None and p.K > 1 and out_dtype != torch.float32
    t = p.fwd
    sums, acc = _fp32(u.device, (batch, total, p.sums_w(t), p.block_n),
                      out.shape if accumulate else (0, ))
    scale = 1.0 / p.K if p.merge == 'mean' else 1.0
    with _on_device(u):
        wrap_triton(scan_fwd_kernel)[p.grid(t)](
            *_inputs(u, delta, A, B, C, D, z, delta_bias), out, acc if accumulate else out, sums,
            last, L, p.dim, total // p.G, N, p.sums_w(t), scale,
            **p.constexprs(t, HAS_D=D is not None, HAS_Z=z is not None,
                           HAS_BIAS=delta_bias is not None))
    return out, last


def _bwd(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Opt, z: Opt,
         delta_bias: Opt, dout: Tensor, dlast: Opt, delta_softplus: bool,
         routes: List[int], hw: List[int], merge: str) -> List[Tensor]:
    """Gradients of u, delta, A, B, C, D, z, delta_bias (empty for an absent D, z, delta_bias)."""
    p = _plan(u, delta, A, B, z, delta_softplus, routes, hw, merge)
    batch, dim, total, L, N = p.batch, p.dim, p.total, p.L, p.N
    du = torch.empty(u.shape, device=u.device, dtype=u.dtype)
    ddelta = torch.empty(delta.shape, device=u.device, dtype=delta.dtype)
    dz = du.new_empty(0) if z is None else torch.empty(z.shape, device=u.device, dtype=z.dtype)
    du_acc = p.u_shared and p.K > 1 and u.dtype != torch.float32
    dz_acc = p.z_shared and p.K > 1 and z.dtype != torch.float32
    t = p.bwd
    n_parts = total // t.block_d
    sums, states, dB, dC, dA, dD, dbias, du32, dz32 = _fp32(
        u.device, (batch, total, p.sums_w(t), p.block_n), (batch, total, p.slots(t), p.block_n),
        (batch, n_parts, N, L), (batch, n_parts, N, L), (batch, total, N), (batch, total),
        (batch, total), du.shape if du_acc else (0, ), dz.shape if dz_acc else (0, ))
    du_acc = du32 if du_acc else du
    dz_acc = dz32 if dz_acc else (du_acc if z is None else dz)
    scale = 1.0 / p.K if p.merge == 'mean' else 1.0
    with _on_device(u):
        wrap_triton(scan_bwd_kernel)[p.grid(t)](
            *_inputs(u, delta, A, B, C, D, z, delta_bias), sums, states, dout, *dout.stride(),
            dA if dlast is None else dlast, du, du_acc, ddelta, du if z is None else dz, dz_acc,
            dB, dC, dA, dD, dbias, L, dim, total // p.G, N, p.sums_w(t), p.slots(t), scale,
            **p.constexprs(t, HAS_D=D is not None, HAS_Z=z is not None,
                           HAS_BIAS=delta_bias is not None, HAS_DLAST=dlast is not None))
        # fixed-order sums of the per-block and per-batch partials
        dB_sum = torch.empty(B.shape, device=u.device, dtype=B.dtype)
        dC_sum = torch.empty(C.shape, device=u.device, dtype=C.dtype)
        dA_sum = torch.empty(A.shape, device=u.device, dtype=torch.float32)
        dD_sum = du.new_empty(0) if D is None else torch.empty_like(D)
        dbias_sum = du.new_empty(0) if delta_bias is None else torch.empty_like(delta_bias)
        OB, MB, IB = batch * p.G, n_parts // p.G, N * L
        work = max(OB * IB, total * N)
        wrap_triton(reduce_partials_kernel)[(-(-work // REDUCE_BLOCK), 5)](
            dB, dB_sum, dC, dC_sum, dA, dA_sum, dD, dD_sum if D is not None else dD, dbias,
            dbias_sum if delta_bias is not None else dbias, OB, MB, IB, batch, total, N,
            HAS_D=D is not None, HAS_BIAS=delta_bias is not None, BLOCK=REDUCE_BLOCK)
    return [du, ddelta, dA_sum, dB_sum, dC_sum, dD_sum, dz, dbias_sum]


scan_triton_fwd = triton_op('mmssm::scan_triton_fwd', _fwd, mutates_args=())
scan_triton_bwd = triton_op('mmssm::scan_triton_bwd', _bwd, mutates_args=())


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs[:8])
    ctx.flags = inputs[8:12]


def _backward(ctx, dout, dlast):
    saved = ctx.saved_tensors
    grads = scan_triton_bwd(*saved, dout, dlast, *ctx.flags)
    # D, z and delta_bias are optional: no gradient where they were absent
    return (*(None if t is None else g for t, g in zip(saved, grads)), None, None, None, None,
            None)


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
    out, last = scan_triton_fwd(
        u, delta, A, B if B.dim() == 4 else B.unsqueeze(1), C if C.dim() == 4 else C.unsqueeze(1),
        D, z, delta_bias, delta_softplus, [ROUTE_CODES[r] for r in paths.routes],
        list(paths.hw or ()), paths.merge or '', out_dtype)
    return (out, last) if return_last_state else out
