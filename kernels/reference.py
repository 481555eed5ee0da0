"""The PyTorch selective scan: the oracle the kernels are tested against, and the CPU path.

Both share :func:`route_scan`, which lays every route's tokens out in visiting order (with plain
gathers: copies are fine here, this is not the fast path), runs a single forward scan over all
channel blocks at once and scatters the results back. They differ in the core:

* :func:`scan_core_loop` is mamba_ssm's ``selective_scan_ref``: one token at a time, autograd
  through the loop. Obviously right, slow, memory hungry: tests only.
* :class:`TorchScan` steps through the tokens with one fused op per token over all batches,
  channels and states, in a token-major layout, and has a hand-written backward that recomputes
  the states instead of storing them, so training on the CPU costs a few full-tensor passes.

Shapes inside the cores: u, delta, z (batch, Dt, L) with Dt channels in G groups; B, C
(batch, G, N, L); A (Dt, N); D, delta_bias (Dt,).
"""
import math
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F

from .paths import ScanPaths

def route_scan(core, u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state,
               paths: ScanPaths, out_dtype):
    batch, total, L = delta.shape
    K = paths.num_routes
    if B.dim() == 3:
        B = B.unsqueeze(1)
    if C.dim() == 3:
        C = C.unsqueeze(1)
    if not paths.is_plain_forward:
        order = paths.token_order(L, device=delta.device)
        # a tensor shared by all routes (u or z with one block, B or C with one group) is
        # repeated so that each route reads it in its own order
        u = _to_routes(u, order, u.shape[1] != total)
        z = None if z is None else _to_routes(z, order, z.shape[1] != total)
        B = _to_routes(B, order, B.shape[1] == 1)
        C = _to_routes(C, order, C.shape[1] == 1)
        delta = _to_routes(delta, order, False)
    out, last_state = core(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    if not paths.is_plain_forward:
        inverse = torch.argsort(order, dim=-1)
        out = _gather_blocks(out, inverse)
    if paths.merge is not None:
        out = out.view(batch, K, total // K, L)
        out = out.sum(1) if paths.merge == 'sum' else out.mean(1)
    out = out.to(out_dtype)
    return (out, last_state) if return_last_state else out


def _to_routes(x, order, shared):
    if shared:
        x = torch.cat([x] * order.shape[0], dim=1)
    return _gather_blocks(x, order)


def _gather_blocks(x, order):
    """Reorder the last dim of each of ``order.shape[0]`` equal blocks of dim 1 by its own row of
    ``order``."""
    K, L = order.shape
    # no -1 in the shape: an empty batch or sequence would leave it undetermined
    xs = x.reshape(x.shape[0], K, math.prod(x.shape[1:-1]) // K, L)
    idx = order.view(1, K, 1, L).expand(xs.shape[0], K, xs.shape[2], L)
    return xs.gather(-1, idx).view(x.shape)


def _dt(delta, delta_bias, delta_softplus):
    dt = delta.float()
    if delta_bias is not None:
        dt = dt + delta_bias.float()[:, None]
    return F.softplus(dt) if delta_softplus else dt


def scan_core_loop(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    """The oracle: mamba_ssm's selective_scan_ref, token by token."""
    batch, Dt, L = u.shape
    G, N = B.shape[1], A.shape[1]
    dt = _dt(delta, delta_bias, delta_softplus)
    Bc = B.float().repeat_interleave(Dt // G, dim=1)  # (batch, Dt, N, L)
    Cc = C.float().repeat_interleave(Dt // G, dim=1)
    h = u.new_zeros(batch, Dt, N, dtype=torch.float32)
    ys = []
    for t in range(L):
        h = torch.exp(dt[:, :, t, None] * A) * h + (dt[:, :, t] * u[:, :, t].float())[..., None] * Bc[..., t]
        ys.append((h * Cc[..., t]).sum(-1))
    y = torch.stack(ys, dim=-1) if ys else h.new_zeros(batch, Dt, 0)
    if D is not None:
        y = y + u.float() * D.float()[:, None]
    if z is not None:
        y = y * F.silu(z.float())
    return y, h


def _linear_scan(a, b, reverse=False):
    """h_t = a_t h_{t-1} + b_t along dim 0 from h = 0; with ``reverse`` the transposed recurrence
    h_t = a_{t+1} h_{t+1} + b_t that the backward pass needs. One fused op per token over every
    batch, channel and state at once: the per-op cost is small next to the elementwise work, and
    unlike parallel-prefix tricks it does no extra passes over the full tensors."""
    h = torch.empty_like(b)
    L = a.shape[0]
    if L == 0:
        return h
    if reverse:
        h[L - 1] = b[L - 1]
        for t in range(L - 2, -1, -1):
            torch.addcmul(b[t], a[t + 1], h[t + 1], out=h[t])
    else:
        h[0] = b[0]
        for t in range(1, L):
            torch.addcmul(b[t], a[t], h[t - 1], out=h[t])
    return h


def _time_major(x, G):
    """(batch, Dt, L) -> (L, batch, G, Dt // G) fp32, contiguous so each token is one block."""
    batch, Dt, L = x.shape
    return x.float().permute(2, 0, 1).reshape(L, batch, G, Dt // G).contiguous()


def _time_major_bc(x):
    """(batch, G, N, L) -> (L, batch, G, 1, N) fp32."""
    return x.float().permute(3, 0, 1, 2).unsqueeze(3).contiguous()


def _channel_major(x):
    """(L, batch, G, Dg) -> (batch, G * Dg, L)."""
    L, batch, G, Dg = x.shape
    return x.permute(1, 2, 3, 0).reshape(batch, G * Dg, L)


def _ungated(h, Ct, u, D):
    """C h + D u, (batch, Dt, L) fp32, from token-major states ``h``."""
    y = _channel_major((h * Ct).sum(-1))
    return y if D is None else y + u.float() * D[:, None]


def _states(u, dt, A, B):
    """Per-token inputs u, dt and decays a, states h, in (L, batch, G, Dg[, N]) layout."""
    G = B.shape[1]
    ut, dtt = _time_major(u, G), _time_major(dt, G)
    a = torch.exp(dtt[..., None] * A.view(G, -1, A.shape[1]))
    h = _linear_scan(a, (dtt * ut)[..., None] * _time_major_bc(B))
    return ut, dtt, a, h


Tensor = torch.Tensor
Opt = Optional[torch.Tensor]


# The CPU scan's two passes are custom ops: torch.compile keeps them whole instead of unrolling
# their token loops into a graph of L steps, and TorchScan (below) ties them together for
# autograd under the name tools/analysis_tools/get_flops.py counts FLOPs by.
@torch.library.custom_op('mmssm::scan_torch_fwd', mutates_args=())
def scan_torch_fwd(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Opt, z: Opt,
                   delta_bias: Opt, delta_softplus: bool) -> Tuple[Tensor, Tensor]:
    """fp32 output (batch, Dt, L) and last state (batch, Dt, N)."""
    dt = _dt(delta, delta_bias, delta_softplus)
    _, _, _, h = _states(u, dt, A, B)
    y = _ungated(h, _time_major_bc(C), u, D)
    out = y if z is None else y * F.silu(z.float())
    batch, Dt, L = u.shape
    last = h[-1].flatten(1, 2).clone() if L else h.new_zeros(batch, Dt, A.shape[1])
    return out, last


@scan_torch_fwd.register_fake
def _(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    batch, Dt, L = u.shape
    return (u.new_empty(batch, Dt, L, dtype=torch.float32),
            u.new_empty(batch, Dt, A.shape[1], dtype=torch.float32))


@torch.library.custom_op('mmssm::scan_torch_bwd', mutates_args=())
def scan_torch_bwd(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Opt, z: Opt,
                   delta_bias: Opt, delta_softplus: bool, dout: Tensor,
                   dlast: Tensor) -> List[Tensor]:
    """Gradients of u, delta, A, B, C, D, z, delta_bias; empty for an absent D, z, delta_bias."""
    G = B.shape[1]
    dt = _dt(delta, delta_bias, delta_softplus)
    ut, dtt, a, h = _states(u, dt, A, B)
    Bt, Ct = _time_major_bc(B), _time_major_bc(C)
    dout = dout.float()
    dz = u.new_empty(0)
    if z is not None:
        y = _ungated(h, Ct, u, D)
        sig = torch.sigmoid(z.float())
        dz = (dout * y * sig * (1 + z.float() * (1 - sig))).to(z.dtype)
        dout = dout * z.float() * sig
    dyt = _time_major(dout, G)
    # dh_t = C_t dy_t + a_{t+1} dh_{t+1}; the last state's own gradient enters at the end
    gh = dyt[..., None] * Ct
    if len(gh):
        gh[-1] += dlast.float().view(gh.shape[1:])
    dh = _linear_scan(a, gh, reverse=True)
    ddtA = torch.zeros_like(dh)  # gradient w.r.t. dt * A
    torch.mul(dh[1:] * a[1:], h[:-1], out=ddtA[1:])
    dhB = (dh * Bt).sum(-1)
    dA = (ddtA * dtt[..., None]).sum((0, 1)).view_as(A)
    ddt = _channel_major((ddtA * A.view(G, -1, A.shape[1])).sum(-1) + dhB * ut)
    du = _channel_major(dhB * dtt)
    dB = (dh * (dtt * ut)[..., None]).sum(3).permute(1, 2, 3, 0)
    dC = (dyt[..., None] * h).sum(3).permute(1, 2, 3, 0)
    dD = u.new_empty(0)
    if D is not None:
        du = du + dout * D[:, None]
        dD = (dout * u.float()).sum((0, 2))
    if delta_softplus:
        bias = 0 if delta_bias is None else delta_bias[:, None]
        ddt = ddt * torch.sigmoid(delta.float() + bias)
    dbias = u.new_empty(0) if delta_bias is None else ddt.sum((0, 2))
    return [du.to(u.dtype), ddt.to(delta.dtype), dA, dB.to(B.dtype).contiguous(),
            dC.to(C.dtype).contiguous(), dD, dz, dbias]


@scan_torch_bwd.register_fake
def _(u, delta, A, B, C, D, z, delta_bias, delta_softplus, dout, dlast):
    def like(t):
        return u.new_empty(0) if t is None else torch.empty_like(t)

    return [torch.empty_like(u), torch.empty_like(delta), torch.empty_like(A), torch.empty_like(B),
            torch.empty_like(C), like(D), like(z), like(delta_bias)]


class TorchScan(torch.autograd.Function):
    """The CPU scan: states are recomputed in the backward pass rather than stored."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus):
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias)
        ctx.delta_softplus = delta_softplus
        return scan_torch_fwd(u, delta, A, B, C, D, z, delta_bias, delta_softplus)

    @staticmethod
    def backward(ctx, dout, dlast):
        saved = ctx.saved_tensors
        grads = scan_torch_bwd(*saved, ctx.delta_softplus, dout, dlast)
        # D, z and delta_bias are optional: no gradient where they were absent
        return (*(None if t is None else g for t, g in zip(saved, grads)), None)


def scan_core_torch(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    return TorchScan.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus)


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                       return_last_state=False, paths=ScanPaths(), out_dtype=None):
    """The oracle, with :func:`kernels.selective_scan`'s arguments (no checks)."""
    return route_scan(scan_core_loop, u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                      return_last_state, paths, out_dtype or u.dtype)
