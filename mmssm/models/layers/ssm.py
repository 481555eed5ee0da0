"""The selective state-space core every mmssm mixer builds on.

A mixer scans its tokens along K routes (``mmssm_kernels.ScanPaths``). Each route has its own
input projection to (dt, B, C), its own dt projection, A and D. They are stored stacked, under the
names of the VMamba release (``x_proj_weight`` (K, R+2N, d_inner), ``dt_projs_weight`` (K, d_inner,
R), ``dt_projs_bias`` (K, d_inner), ``A_logs`` (K*d_inner, N), ``Ds`` (K*d_inner,)), so that one
``selective_scan`` call runs every route and VMamba checkpoints load without renaming. Families whose
releases store the routes apart (Vim) stack them in their checkpoint filter.
"""
import math

import torch
import torch.nn as nn

from mmssm_kernels import ScanPaths, selective_scan
from mmssm_kernels.interface import backend_for
from mmssm_kernels.torch_scan import streamed_selective_scan
from .fused import MixerInnerFn


def allocated_rows(x):
    """``x`` (batch, C, L) over its whole rows where they are allocated longer than L (a
    backbone pads them so that each starts 16-byte aligned: Vim's 1025 tokens), else ``x``."""
    batch, channels, L = x.shape
    row = x.stride(1)
    if x.stride(2) != 1 or row <= L or x.stride(0) != channels * row or (
            (x.storage_offset() + batch * channels * row) * x.element_size()
            > x.untyped_storage().nbytes()):
        return x
    return x.as_strided((batch, channels, row), x.stride())


class SelectiveSSM(nn.Module):
    """Base of the mixers: holds the K routes' SSM parameters and runs the scan.

    A mixer subclasses it, adds its own projections and convolutions, defines ``front(pre, ...)``
    (what turns its input projection's output into the scan's u: convolution and SiLU) and calls
    ``self.mix(pre, paths, z)`` once. While gradients are wanted that runs as one fused function
    (:class:`.fused.MixerInnerFn`) that keeps only ``pre``, ``z`` and the scan's chunk-end states
    and recomputes front, x_proj and dt_proj in the backward. ``scan_backend`` is the backbone's
    argument of that name, handed to its mixers when it is built (None: the global default,
    MMSSM_SCAN_BACKEND).

    Args:
        d_inner: channels per route.
        d_state: N, the state size.
        dt_rank: R, the rank of the dt projection; 'auto' is ceil(d_model / 16).
        num_routes: K.
        d_model: the block width, only used for dt_rank='auto'.
        dt_min, dt_max, dt_init_floor, dt_scale: Mamba's dt initialisation.
    """

    scan_backend = None

    def __init__(self, d_inner, d_state, dt_rank, num_routes, d_model=None, dt_min=0.001,
                 dt_max=0.1, dt_init_floor=1e-4, dt_scale=1.0):
        super().__init__()
        if dt_rank == 'auto':
            if d_model is None:
                raise ValueError("SelectiveSSM: dt_rank='auto' needs d_model")
            dt_rank = math.ceil(d_model / 16)
        self.d_inner, self.d_state, self.dt_rank = int(d_inner), int(d_state), int(dt_rank)
        self.num_routes = K = int(num_routes)
        self.x_proj_weight = nn.Parameter(
            torch.empty(K, self.dt_rank + 2 * self.d_state, self.d_inner))
        self.dt_projs_weight = nn.Parameter(torch.empty(K, self.d_inner, self.dt_rank))
        self.dt_projs_bias = nn.Parameter(torch.empty(K, self.d_inner))
        self.A_logs = nn.Parameter(torch.empty(K * self.d_inner, self.d_state))
        self.Ds = nn.Parameter(torch.empty(K * self.d_inner))
        # as mamba_ssm marks them: decaying A, D or the dt bias towards zero changes the dynamics
        for p in (self.dt_projs_bias, self.A_logs, self.Ds):
            p._no_weight_decay = True
        self.reset_ssm_parameters(dt_min, dt_max, dt_init_floor, dt_scale)

    @torch.no_grad()
    def reset_ssm_parameters(self, dt_min=0.001, dt_max=0.1, dt_init_floor=1e-4, dt_scale=1.0):
        """Mamba's initialisation: x_proj as nn.Linear's default, dt_proj uniform in
        +-dt_scale/sqrt(R), dt spread log-uniformly over [dt_min, dt_max] through the softplus,
        S4D-real A = -(1..N), D = 1."""
        bound = 1 / math.sqrt(self.d_inner)
        nn.init.uniform_(self.x_proj_weight, -bound, bound)
        dt_std = self.dt_rank**-0.5 * dt_scale
        nn.init.uniform_(self.dt_projs_weight, -dt_std, dt_std)
        log_dt = torch.rand(self.num_routes, self.d_inner) * (math.log(dt_max) - math.log(dt_min))
        dt = torch.exp(log_dt + math.log(dt_min)).clamp(min=dt_init_floor)
        self.dt_projs_bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        self.A_logs.copy_(torch.log(torch.arange(1, self.d_state + 1, dtype=torch.float32))
                          .repeat(self.num_routes * self.d_inner, 1))
        self.Ds.fill_(1.0)

    def project(self, u):
        """u: (batch, d_inner, L) shared by the routes, or (batch, K*d_inner, L) one block per route
        -> delta (batch, K*d_inner, L), B and C (batch, K, N, L), each in the token order of u,
        token-contiguous in rows as long as u's allocated ones (the scan's vector loads)."""
        batch, channels, L = u.shape
        K, d = self.num_routes, self.d_inner
        rows = allocated_rows(u)
        weight = self.x_proj_weight.to(u.dtype)
        if channels == d:
            x_dbl = (weight.flatten(0, 1) @ rows).unflatten(1, (K, -1))
        elif channels == K * d:
            x_dbl = weight @ rows.unflatten(1, (K, d))
        else:
            raise ValueError(f'{type(self).__name__}: u has {channels} channels, expected '
                             f'{d} (shared) or {K * d} (per route)')
        dt, B, C = x_dbl.split((self.dt_rank, self.d_state, self.d_state), dim=2)
        delta = self.dt_projs_weight.to(dt.dtype) @ dt
        return delta.flatten(1, 2)[..., :L], B[..., :L], C[..., :L]

    def front(self, pre, *args):
        """The mixer's input projection output -> the scan's u (batch, d_inner or
        K*d_inner, L)."""
        raise NotImplementedError

    def scan_parameters(self):
        """A, D and the dt bias as the scan takes them (fp32, routes flattened)."""
        return (-torch.exp(self.A_logs.float()), self.Ds.float(),
                self.dt_projs_bias.float().flatten())

    def streams(self, x):
        """Whether a forward on ``x`` can make the scan's inputs block by block
        (:meth:`mix_streamed`): no gradients, the PyTorch scan path, plain ops (not traced,
        compiled or exported, which record the whole-sequence ops)."""
        return (not torch.is_grad_enabled() and not torch.jit.is_tracing()
                and not torch.compiler.is_compiling() and not torch.compiler.is_exporting()
                and backend_for(x.device, self.scan_backend) == 'torch')

    def mix_streamed(self, front_block, paths: ScanPaths, batch, L, out_dtype):
        """:meth:`mix` without gradients, holding one block of tokens' working set instead of
        whole-sequence inputs: ``front_block(start, stop)`` gives steps start:stop of every
        route, u and z (or None), (batch, K*d_inner, t) each in its route's step order (a mixer
        makes them from its input: projection, convolution with its halo, SiLU). Returns the
        scan output token-major (``.transpose(1, 2)`` is contiguous)."""
        A, D, bias = self.scan_parameters()

        def block_inputs(start, stop):
            u, z = front_block(start, stop)
            return (u, *self.project(u), z)

        return streamed_selective_scan(block_inputs, A, D, bias, True, paths, batch, L,
                                       out_dtype)

    def mix(self, pre, paths: ScanPaths, z=None, out_dtype=None, front_args=()):
        """front(pre, *front_args) -> x_proj, dt_proj -> one selective_scan over every route of
        ``paths`` (softplus dt, fp32 states), fused when gradients are wanted."""
        if paths.num_routes != self.num_routes:
            raise ValueError(f'{type(self).__name__} holds {self.num_routes} routes, '
                             f'paths has {paths.num_routes}: {paths.routes}')
        params = [p for p in self.parameters() if p.requires_grad]
        # a jit trace (FLOP counting) records the plain ops: it cannot take a module argument
        if torch.is_grad_enabled() and not torch.jit.is_tracing() and (
                pre.requires_grad or params or (z is not None and z.requires_grad)):
            # every parameter goes in (in_proj's and out_proj's get no gradient from here):
            # which ones front() reads is the mixer's business
            return MixerInnerFn.apply(self, paths, out_dtype, tuple(front_args), pre, z, *params)
        u = self.front(pre, *front_args)
        delta, B, C = self.project(u)
        A, D, bias = self.scan_parameters()
        return selective_scan(u, delta, A, B, C, D=D, z=z, delta_bias=bias, delta_softplus=True,
                              paths=paths, out_dtype=out_dtype, backend=self.scan_backend)
