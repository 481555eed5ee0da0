"""The PyTorch selective scan: the oracle the kernels are tested against, and the CPU path.

Both share :func:`route_scan`, which lays every route's tokens out in visiting order (with plain
gathers: copies are fine here, this is not the fast path), runs a single forward scan over all
channel blocks at once and scatters the results back. They differ in the core:

* :func:`scan_core_loop` is mamba_ssm's ``selective_scan_ref``: one token at a time, autograd
  through the loop. Obviously right, slow, memory hungry: tests only.
* :class:`ChunkedScan` solves the recurrence in chunks (a log-depth doubling scan inside each chunk,
  a short loop across chunks) and has a hand-written backward that recomputes the states instead of
  storing them, so training on the CPU costs a few full-tensor passes per layer.

Shapes inside the cores: u, delta, z (batch, Dt, L) with Dt channels in G groups; B, C
(batch, G, N, L); A (Dt, N); D, delta_bias (Dt,).
"""
import torch
import torch.nn.functional as F

from .paths import ScanPaths

CHUNK = 32


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
    lead = x.shape[:1]
    xs = x.reshape(lead + (K, -1, L))
    idx = order.view(1, K, 1, L).expand(xs.shape[0], K, xs.shape[2], L)
    return xs.gather(-1, idx).view(x.shape)


def _grouped(x, G):
    """(batch, Dt, ...) -> (batch, G, Dt // G, ...)."""
    return x.view(x.shape[0], G, x.shape[1] // G, *x.shape[2:])


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
    y = torch.stack(ys, dim=-1)
    if D is not None:
        y = y + u.float() * D.float()[:, None]
    if z is not None:
        y = y * F.silu(z.float())
    return y, h


def _linear_scan(a, b, reverse=False):
    """h_t = a_t * h_{t-1} + b_t along dim -2 of (..., L, N), h_{-1} = 0 (t runs backwards if
    ``reverse``). Doubling inside chunks keeps every factor a product of a's (|a| <= 1), so unlike
    a cumsum of logs it cannot overflow."""
    if reverse:
        return _linear_scan(a.flip(-2), b.flip(-2)).flip(-2)
    *lead, L, N = a.shape
    T = min(CHUNK, L)
    pad = (-L) % T
    if pad:
        a = F.pad(a, (0, 0, 0, pad), value=1.0)
        b = F.pad(b, (0, 0, 0, pad))
    a = a.reshape(*lead, -1, T, N)
    b = b.reshape(*lead, -1, T, N)
    off = 1
    while off < T:
        b = torch.cat([b[..., :off, :], torch.addcmul(b[..., off:, :], a[..., off:, :], b[..., :-off, :])], -2)
        a = torch.cat([a[..., :off, :], a[..., off:, :] * a[..., :-off, :]], -2)
        off *= 2
    # a, b now hold each chunk's prefix products and its states from a zero start; carry the
    # state across chunk boundaries
    carry = torch.zeros_like(b[..., 0, 0:1, :])
    carries = []
    for c in range(a.shape[-3]):
        carries.append(carry)
        carry = torch.addcmul(b[..., c, -1:, :], a[..., c, -1:, :], carry)
    h = torch.addcmul(b, a, torch.stack(carries, dim=-3))
    return h.reshape(*lead, -1, N)[..., :L, :]


class ChunkedScan(torch.autograd.Function):

    @staticmethod
    def _states(u, dt, A, B, G):
        """Per-token decays a and states h, both (batch, G, Dt // G, L, N), fp32."""
        uf = _grouped(u.float(), G)
        dtg = _grouped(dt, G)
        a = torch.exp(dtg[..., None] * A.view(G, -1, 1, A.shape[1]))
        Bt = B.float().transpose(-1, -2).unsqueeze(2)  # (batch, G, 1, L, N)
        h = _linear_scan(a, (dtg * uf)[..., None] * Bt)
        return a, h

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus):
        G = B.shape[1]
        dt = _dt(delta, delta_bias, delta_softplus)
        _, h = ChunkedScan._states(u, dt, A, B, G)
        Ct = C.float().transpose(-1, -2).unsqueeze(2)
        y = (h * Ct).sum(-1).flatten(1, 2)
        if D is not None:
            y = y + u.float() * D[:, None]
        out = y if z is None else y * F.silu(z.float())
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias)
        ctx.delta_softplus = delta_softplus
        return out, h[..., -1, :].flatten(1, 2)

    @staticmethod
    def backward(ctx, dout, dlast):
        u, delta, A, B, C, D, z, delta_bias = ctx.saved_tensors
        G = B.shape[1]
        batch, Dt, L = u.shape
        dt = _dt(delta, delta_bias, ctx.delta_softplus)
        a, h = ChunkedScan._states(u, dt, A, B, G)
        Bt = B.float().transpose(-1, -2).unsqueeze(2)
        Ct = C.float().transpose(-1, -2).unsqueeze(2)
        dout = dout.float()
        dz = None
        if z is not None:
            y = (h * Ct).sum(-1).flatten(1, 2)
            if D is not None:
                y = y + u.float() * D[:, None]
            sig = torch.sigmoid(z.float())
            dz = (dout * y * sig * (1 + z.float() * (1 - sig))).to(z.dtype)
            dout = dout * z.float() * sig
        dyg = _grouped(dout, G)
        # dh_t = C_t dy_t + a_{t+1} dh_{t+1}; the last state's own gradient enters at t = L-1
        gh = dyg[..., None] * Ct
        if dlast is not None:
            gh[..., -1, :] += _grouped(dlast.float(), G)
        a_next = torch.cat([a[..., 1:, :], torch.zeros_like(a[..., :1, :])], -2)
        dh = _linear_scan(a_next, gh, reverse=True)
        h_prev = torch.cat([torch.zeros_like(h[..., :1, :]), h[..., :-1, :]], -2)
        ddtA = dh * h_prev * a  # gradient w.r.t. dt*A
        uf = _grouped(u.float(), G)
        dtg = _grouped(dt, G)
        dhB = (dh * Bt).sum(-1)
        dA = (ddtA * dtg[..., None]).sum((0, 3)).view_as(A)
        ddt = (ddtA * A.view(G, -1, 1, A.shape[1])).sum(-1) + dhB * uf
        du = (dhB * dtg).flatten(1, 2)
        dB = ((dh * (dtg * uf)[..., None]).sum(2)).transpose(-1, -2)
        dC = ((dyg[..., None] * h).sum(2)).transpose(-1, -2)
        ddt = ddt.flatten(1, 2)
        dD = None
        if D is not None:
            du = du + dout * D[:, None]
            dD = (dout * u.float()).sum((0, 2))
        if ctx.delta_softplus:
            ddt = ddt * torch.sigmoid(delta.float() + (0 if delta_bias is None else delta_bias[:, None]))
        dbias = None if delta_bias is None else ddt.sum((0, 2))
        return (du.to(u.dtype), ddt.to(delta.dtype), dA, dB.to(B.dtype), dC.to(C.dtype), dD, dz,
                dbias, None)


def scan_core_chunked(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    return ChunkedScan.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus)


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                       return_last_state=False, paths=ScanPaths(), out_dtype=None):
    """The oracle, with :func:`kernels.selective_scan`'s arguments (no checks)."""
    return route_scan(scan_core_loop, u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                      return_last_state, paths, out_dtype or u.dtype)
