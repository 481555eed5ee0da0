"""The selective scan's PyTorch path (the CPU's), in memory bounded by one chunk of tokens.

Every route walks its own token order (``ScanPaths.token_order``); the scan steps through the
routes' orders together, a chunk of steps at a time, and gathers each chunk's inputs straight from
the caller's tensors and scatters its results straight back, so no flipped, transposed or
repeated copy of a sequence is made and no (tokens x channels x states) tensor is larger than one
chunk. Inside a chunk it takes one fused op per token over every batch, channel and state.

A forward without gradients may also take its inputs from a function of the step range instead of
tensors (:func:`streamed_selective_scan`): a mixer then computes them block by block of steps, so
that neither the inputs nor the intermediates they are made from are ever held for a whole sequence.

For the backward the forward keeps what the Triton path keeps: its inputs and the fp32 states at
chunk ends (every :data:`SAVE_EVERY` steps). The backward walks the chunks from the last, rebuilds
each chunk's states from the state saved before it and runs the adjoint scan through it, carrying
the adjoint state from chunk to chunk.

Layout inside a chunk of t steps: channel tensors (t, batch, K, Gk, c) and states
(t, batch, K, Gk, c, N), fp32, where each of the K routes has Gk = G / K groups of B and C of c
channels (Gk = 1, c = dim when one group serves every route).
"""
from functools import lru_cache
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F

from .paths import ScanPaths

#: steps between the states a forward with gradients keeps for the backward
SAVE_EVERY = 128
#: elements of one (steps x channels x states) temporary of a forward without gradients
WORKSET = 1 << 18
#: elements of one (steps x channels) block of inputs a forward without gradients reads at once
BLOCK = 1 << 16

Tensor = torch.Tensor
Opt = Optional[torch.Tensor]


@lru_cache(maxsize=64)
def _order(paths: ScanPaths, L: int, device: torch.device) -> Optional[Tensor]:
    return None if paths.is_plain_forward else paths.token_order(L, device=device)


def _pow2_at_most(n):
    return 1 << max(n, 1).bit_length() - 1


def _no_grad_steps(batch, total, N):
    """Steps per chunk (states computed at once) and per block (inputs read at once, a multiple
    of the chunk) of a forward without gradients."""
    chunk = max(8, min(SAVE_EVERY, _pow2_at_most(WORKSET // max(batch * total * N, 1))))
    return chunk, max(chunk, _pow2_at_most(BLOCK // max(batch * total, 1)))


def _take(x, order, shared, start, stop):
    """Steps start:stop of each route: x (batch, C, *rest, L) -> (batch, K, C // K or C, *rest, t),
    from the route's own block of C, or from the whole of x when it is ``shared`` by the routes."""
    if order is None:  # one route, walking forward
        return x[:, None, ..., start:stop]
    idx = order[:, start:stop]
    K, t = idx.shape
    if shared:
        return x[..., idx].movedim(-2, 1)
    xs = x.unflatten(1, (K, x.shape[1] // K))
    index = idx.view(1, K, *[1] * (xs.dim() - 3), t).expand(*xs.shape[:-1], t)
    return xs.gather(-1, index)


def _put(full, val, order, shared, start, stop):
    """The inverse of :func:`_take`: writes ``val`` (batch, K, ..., t) back at the routes' steps;
    a ``shared`` ``full`` receives the sum over the routes (``full`` must then start at zero)."""
    if order is None:
        full[..., start:stop] = val[:, 0]
        return
    idx = order[:, start:stop]
    K, t = idx.shape
    if shared:
        full.index_add_(-1, idx.flatten(), val.movedim(1, -2).flatten(-2).to(full.dtype))
        return
    fk = full.unflatten(1, (K, full.shape[1] // K))
    index = idx.view(1, K, *[1] * (fk.dim() - 3), t).expand(*fk.shape[:-1], t)
    fk.scatter_(-1, index, val.to(full.dtype))


class _Problem:
    """Shapes, route orders and per-channel parameters of one call."""

    def __init__(self, batch, L, G, u_channels, z_channels, A, D, delta_bias, paths,
                 delta_softplus):
        self.batch, self.total, self.L = batch, A.shape[0], L
        self.K = K = paths.num_routes
        self.dim = self.total // K
        self.N = A.shape[1]
        self.Gk = G // K if G > 1 else 1
        self.c = self.dim // self.Gk
        self.order = _order(paths, self.L, A.device)
        self.u_shared = u_channels != self.total
        self.z_shared = z_channels is not None and z_channels != self.total
        self.bc_shared = G == 1
        self.merge = paths.merge if K > 1 else None
        self.scale = 1.0 / K if paths.merge == 'mean' else 1.0
        self.softplus = delta_softplus
        self.A = self.per_channel(A.float())
        self.D = None if D is None else self.per_channel(D.float())
        self.bias = None if delta_bias is None else self.per_channel(delta_bias.float())

    @classmethod
    def of(cls, u, delta, A, B, D, z, delta_bias, paths, delta_softplus):
        batch, _, L = delta.shape
        return cls(batch, L, B.shape[1], u.shape[1], None if z is None else z.shape[1], A, D,
                   delta_bias, paths, delta_softplus)

    def per_channel(self, p):
        """(K*dim, ...) -> (K, Gk, c, ...)."""
        return p.reshape(self.K, self.Gk, self.c, *p.shape[1:])

    def channels(self, x, shared, start, stop):
        """(batch, dim or K*dim, L) -> (t, batch, K, Gk, c) fp32."""
        x = _take(x, self.order, shared, start, stop).float()
        return x.unflatten(2, (self.Gk, self.c)).permute(4, 0, 1, 2, 3).contiguous()

    def block_channels(self, x):
        """A block of steps as a streamed input gives it, (batch, K*dim, t) in each route's step
        order -> (t, batch, K, Gk, c) fp32."""
        return (x.float().unflatten(1, (self.K, self.Gk, self.c)).permute(4, 0, 1, 2, 3)
                .contiguous())

    def block_bc(self, x):
        """(batch, G, N, t) in each route's step order -> (t, batch, K, Gk, 1, N) fp32."""
        return (x.float().unflatten(1, (self.K, self.Gk)).permute(4, 0, 1, 2, 3).unsqueeze(-2)
                .contiguous())

    def put_channels(self, full, val, shared, start, stop):
        _put(full, val.permute(1, 2, 3, 4, 0).flatten(2, 3), self.order, shared, start, stop)

    def bc(self, x, start, stop):
        """(batch, G, N, L) -> (t, batch, K, Gk or 1, 1, N) fp32."""
        if self.bc_shared:
            x = _take(x[:, 0], self.order, True, start, stop).unsqueeze(2)
        else:
            x = _take(x, self.order, False, start, stop)
        return x.float().permute(4, 0, 1, 2, 3).unsqueeze(-2).contiguous()

    def put_bc(self, full, val, start, stop):
        val = val.squeeze(-2).permute(1, 2, 3, 4, 0)  # (batch, K, Gk, N, t)
        if self.bc_shared:
            _put(full[:, 0], val[:, :, 0], self.order, True, start, stop)
        else:
            _put(full, val, self.order, False, start, stop)

    def dt(self, delta, grad=False):
        """softplus(delta + bias) of a block of delta (t, batch, K, Gk, c) and, with ``grad``, for
        its gradient sigmoid(delta + bias)."""
        dt = delta + self.bias if self.bias is not None else delta
        if not self.softplus:
            return dt, None
        return F.softplus(dt), torch.sigmoid(dt) if grad else None

    def states(self, h0, dt, u, Bt):
        """Decays a_t = exp(dt_t A) and states h_t = a_t h_{t-1} + dt_t u_t B_t from ``h0``."""
        a = torch.exp(dt[..., None] * self.A)
        h = (dt * u)[..., None] * Bt
        h[0].addcmul_(a[0], h0)
        for s in range(1, h.shape[0]):
            h[s].addcmul_(a[s], h[s - 1])
        return a, h

    def zeros_state(self, like):
        return like.new_zeros(self.batch, self.K, self.Gk, self.c, self.N, dtype=torch.float32)

    def flat_state(self, h):
        return h.reshape(self.batch, self.total, self.N)


def _scan(p, blocks, out, save_states):
    """The forward over ``blocks``: (start, stop, (delta, u, B, C, z) of those steps, laid out
    as :meth:`_Problem.channels` and :meth:`_Problem.bc` give them), states computed a chunk of
    steps at a time. Writes ``out``; returns the last state and, with ``save_states`` (one
    chunk per block), the chunk-end states."""
    states = out.new_empty(p.batch, p.total, max(-(-p.L // SAVE_EVERY) - 1, 0) if save_states
                           else 0, p.N, dtype=torch.float32)
    chunk = SAVE_EVERY if save_states else _no_grad_steps(p.batch, p.total, p.N)[0]
    h = p.zeros_state(out)
    for i, (start, stop, (delta, u, B, C, z)) in enumerate(blocks):
        dt, _ = p.dt(delta)
        ys = []
        for s in range(0, stop - start, chunk):
            t = slice(s, s + chunk)
            _, hs = p.states(h, dt[t], u[t], B[t])
            ys.append(torch.matmul(hs, C[t].transpose(-1, -2)).squeeze(-1))
            h = hs[-1]
            del hs
        y = torch.cat(ys) if len(ys) > 1 else ys[0]
        if p.D is not None:
            y.addcmul_(u, p.D)
        if z is not None:
            y.mul_(F.silu(z))
        if p.scale != 1.0:
            y.mul_(p.scale)
        p.put_channels(out, y, p.merge is not None, start, stop)
        if save_states and stop < p.L:
            states[:, :, i] = p.flat_state(h)
    return p.flat_state(h).clone(), states


def _blocks(p, size, take):
    for start in range(0, p.L, size):
        stop = min(start + size, p.L)
        yield start, stop, take(start, stop)


def _forward(u, delta, A, B, C, D, z, delta_bias, order_paths, delta_softplus, out_dtype,
             save_states):
    p = _Problem.of(u, delta, A, B, D, z, delta_bias, order_paths, delta_softplus)
    size = SAVE_EVERY if save_states else _no_grad_steps(p.batch, p.total, p.N)[1]

    def take(start, stop):
        return (p.channels(delta, False, start, stop), p.channels(u, p.u_shared, start, stop),
                p.bc(B, start, stop), p.bc(C, start, stop),
                None if z is None else p.channels(z, p.z_shared, start, stop))

    out = u.new_zeros(p.batch, p.dim if p.merge else p.total, p.L,
                      dtype=torch.float32 if p.merge else out_dtype)
    last, states = _scan(p, _blocks(p, size, take), out, save_states)
    return out.to(out_dtype), last, states


def streamed_selective_scan(block_inputs, A, D, delta_bias, delta_softplus, paths: ScanPaths,
                            batch: int, L: int, out_dtype):
    """The scan without gradients, its inputs made block by block: ``block_inputs(start, stop)``
    gives steps start:stop of every route, u, delta, B, C and z (or None) as (batch, K*dim, t)
    and (batch, K, N, t), each route's block in that route's step order
    (route k visits tokens ``paths.token_order(L)[k, start:stop]``). Blocks hold about
    :data:`BLOCK` (steps x channels) elements. Returns the output, (batch, dim or K*dim, L) as
    :func:`torch_selective_scan` does, laid out token-major (``.transpose(1, 2)`` is
    contiguous, as a projection after the scan wants it)."""
    p = _Problem(batch, L, paths.num_routes, A.shape[0], A.shape[0], A, D, delta_bias, paths,
                 delta_softplus)

    def take(start, stop):
        u, delta, B, C, z = block_inputs(start, stop)
        return (p.block_channels(delta), p.block_channels(u), p.block_bc(B), p.block_bc(C),
                None if z is None else p.block_channels(z))

    out = A.new_zeros(batch, L, p.dim if p.merge else p.total,
                      dtype=torch.float32 if p.merge else out_dtype).transpose(1, 2)
    _scan(p, _blocks(p, _no_grad_steps(batch, p.total, p.N)[1], take), out, False)
    return out.to(out_dtype)


def _backward(u, delta, A, B, C, D, z, delta_bias, order_paths, delta_softplus, states, dout,
              dlast):
    p = _Problem.of(u, delta, A, B, D, z, delta_bias, order_paths, delta_softplus)
    chunk = SAVE_EVERY
    f32 = dict(dtype=torch.float32)
    du = u.new_zeros(u.shape, **f32)
    ddelta = delta.new_empty(delta.shape, **f32)
    dz = None if z is None else z.new_zeros(z.shape, **f32)
    dB = B.new_zeros(B.shape, **f32)
    dC = C.new_zeros(C.shape, **f32)
    dA = torch.zeros_like(p.A)
    dD = None if D is None else torch.zeros_like(p.D)
    dbias = None if delta_bias is None else torch.zeros_like(p.bias)
    dout = dout.float()
    carry = p.zeros_state(u) if dlast is None else dlast.float().reshape(p.zeros_state(u).shape)
    starts = list(range(0, p.L, chunk))
    for i in reversed(range(len(starts))):
        start, stop = starts[i], min(starts[i] + chunk, p.L)
        h0 = p.zeros_state(u) if i == 0 else states[:, :, i - 1].reshape(carry.shape)
        dt, dsoft = p.dt(p.channels(delta, False, start, stop), grad=True)
        uc = p.channels(u, p.u_shared, start, stop)
        Bt, Ct = p.bc(B, start, stop), p.bc(C, start, stop)
        a, h = p.states(h0, dt, uc, Bt)
        dy = p.channels(dout, p.merge is not None, start, stop)
        if p.scale != 1.0:
            dy.mul_(p.scale)
        if z is not None:
            zc = p.channels(z, p.z_shared, start, stop)
            y = torch.matmul(h, Ct.transpose(-1, -2)).squeeze(-1)
            if p.D is not None:
                y.addcmul_(uc, p.D)
            sig = torch.sigmoid(zc)
            p.put_channels(dz, dy * y * sig * (1 + zc * (1 - sig)), p.z_shared, start, stop)
            del y
            dy.mul_(zc * sig)
        # adjoint: dh_t = C_t dy_t + a_{t+1} dh_{t+1}, the next chunk's a_{t+1} dh_{t+1} carried
        dh = dy[..., None] * Ct
        dh[-1].add_(carry)
        for s in range(dh.shape[0] - 2, -1, -1):
            dh[s].addcmul_(a[s + 1], dh[s + 1])
        carry = a[0] * dh[0]
        dC_c = torch.matmul(dy.unsqueeze(-2), h)  # (t, batch, K, Gk, 1, N)
        # gradient of dt * A at each step: dh_t a_t h_{t-1}
        ddtA = dh * a
        del a
        ddtA[1:].mul_(h[:-1])
        ddtA[0].mul_(h0)
        del h
        dA.add_((ddtA * dt[..., None]).sum((0, 1)))
        ddt = (ddtA * p.A).sum(-1)
        del ddtA
        dhB = torch.matmul(dh, Bt.transpose(-1, -2)).squeeze(-1)
        dB_c = torch.matmul((dt * uc).unsqueeze(-2), dh)
        del dh
        ddt.addcmul_(dhB, uc)
        du_c = dhB * dt
        if p.D is not None:
            du_c.addcmul_(dy, p.D)
            dD.add_((dy * uc).sum((0, 1)))
        if dsoft is not None:
            ddt.mul_(dsoft)
        if dbias is not None:
            dbias.add_(ddt.sum((0, 1)))
        p.put_channels(du, du_c, p.u_shared, start, stop)
        p.put_channels(ddelta, ddt, False, start, stop)
        p.put_bc(dB, dB_c, start, stop)
        p.put_bc(dC, dC_c, start, stop)

    def flat(g):
        return u.new_empty(0) if g is None else g.reshape(p.total, *g.shape[3:])

    return [du.to(u.dtype), ddelta.to(delta.dtype), flat(dA), dB.to(B.dtype), dC.to(C.dtype),
            flat(dD), u.new_empty(0) if dz is None else dz.to(z.dtype), flat(dbias)]


# The two passes are custom ops: torch.compile keeps them whole instead of unrolling their token
# loops into a graph of L steps. A ScanPaths is not an op argument: routes travel as their names
# joined by commas, the grid (H, W) as H * 2**31 + W (0: none; a list would trip jit tracing).
def _paths(routes, hw, merge):
    return ScanPaths(tuple(routes.split(',')), divmod(hw, 1 << 31) if hw else None,
                     merge or None)


@torch.library.custom_op('mmssm::scan_torch_fwd', mutates_args=())
def scan_torch_fwd(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Opt, z: Opt,
                   delta_bias: Opt, delta_softplus: bool, routes: str, hw: int,
                   merge: str, out_dtype: torch.dtype, save_states: bool
                   ) -> Tuple[Tensor, Tensor, Tensor]:
    """Output, last state (batch, K*dim, N) and, with ``save_states``, the chunk-end states
    (batch, K*dim, chunks - 1, N) the backward restarts from. B and C are (batch, G, N, L)."""
    return _forward(u, delta, A, B, C, D, z, delta_bias, _paths(routes, hw, merge),
                    delta_softplus, out_dtype, save_states)


@scan_torch_fwd.register_fake
def _(u, delta, A, B, C, D, z, delta_bias, delta_softplus, routes, hw, merge, out_dtype,
      save_states):
    batch, total, L = delta.shape
    N = A.shape[1]
    K = len(routes.split(','))
    out_ch = total // K if merge and K > 1 else total
    chunks = max(-(-L // SAVE_EVERY) - 1, 0) if save_states else 0
    return (u.new_empty(batch, out_ch, L, dtype=out_dtype),
            u.new_empty(batch, total, N, dtype=torch.float32),
            u.new_empty(batch, total, chunks, N, dtype=torch.float32))


@torch.library.custom_op('mmssm::scan_torch_bwd', mutates_args=())
def scan_torch_bwd(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Opt, z: Opt,
                   delta_bias: Opt, states: Tensor, dout: Tensor, dlast: Opt,
                   delta_softplus: bool, routes: str, hw: int,
                   merge: str) -> List[Tensor]:
    """Gradients of u, delta, A, B, C, D, z, delta_bias; empty for an absent D, z, delta_bias."""
    return _backward(u, delta, A, B, C, D, z, delta_bias, _paths(routes, hw, merge),
                     delta_softplus, states, dout, dlast)


@scan_torch_bwd.register_fake
def _(u, delta, A, B, C, D, z, delta_bias, states, dout, dlast, delta_softplus, routes, hw,
      merge):
    def like(t):
        return u.new_empty(0) if t is None else torch.empty_like(t)

    return [torch.empty_like(u), torch.empty_like(delta), torch.empty_like(A), torch.empty_like(B),
            torch.empty_like(C), like(D), like(z), like(delta_bias)]


def op_args(paths: ScanPaths):
    """``paths`` as the ops' (routes, hw, merge) arguments."""
    hw = (int(paths.hw[0]) << 31) + int(paths.hw[1]) if paths.hw else 0
    return ','.join(paths.routes), hw, paths.merge or ''


class TorchScan(torch.autograd.Function):
    """The two ops tied together for autograd, under the name tools/analysis_tools/get_flops.py
    counts the scan's FLOPs by."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus, routes, hw, merge,
                out_dtype, save):
        out, last, states = scan_torch_fwd(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                           routes, hw, merge, out_dtype, save)
        if save:
            ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, states)
            ctx.flags = (delta_softplus, routes, hw, merge)
        return out, last

    @staticmethod
    def backward(ctx, dout, dlast):
        *saved, states = ctx.saved_tensors
        softplus, routes, hw, merge = ctx.flags
        grads = scan_torch_bwd(*saved, states, dout, dlast, softplus, routes, hw, merge)
        # D, z and delta_bias are optional: no gradient where they were absent
        return (*(None if t is None else g for t, g in zip(saved, grads)), *[None] * 6)


def torch_selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state,
                         paths: ScanPaths, out_dtype):
    B = B if B.dim() == 4 else B.unsqueeze(1)
    C = C if C.dim() == 4 else C.unsqueeze(1)
    save = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (u, delta, A, B, C, D, z, delta_bias))
    out, last = TorchScan.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                *op_args(paths), out_dtype, save)
    return (out, last) if return_last_state else out
