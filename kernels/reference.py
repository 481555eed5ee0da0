"""The selective scan's oracle, which both paths (:mod:`.torch_scan`, :mod:`.triton_scan`) are
tested against: mamba_ssm's ``selective_scan_ref``, one token at a time, autograd through the loop.
Obviously right, slow, memory hungry: tests only.

:func:`route_scan` lays every route's tokens out in visiting order (with plain gathers: copies are
fine here), runs a single forward scan over all channel blocks at once and scatters the results
back. Shapes inside the core: u, delta, z (batch, Dt, L) with Dt channels in G groups; B, C
(batch, G, N, L); A (Dt, N); D, delta_bias (Dt,).
"""
import math

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


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                       return_last_state=False, paths=ScanPaths(), out_dtype=None):
    """The oracle, with :func:`kernels.selective_scan`'s arguments (no checks)."""
    return route_scan(scan_core_loop, u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                      return_last_state, paths, out_dtype or u.dtype)
