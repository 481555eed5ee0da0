"""Vim's bidirectional Mamba mixer ("bimamba v2").

As in the official Vim: in_proj and out_proj are shared, each direction has its own conv1d, x_proj,
dt_proj, A and D, and the two directions' outputs are averaged. Parameter names follow the official
checkpoints so they load unchanged. The backward direction is not computed on flipped copies: its
causal conv becomes an anti-causal conv (kernel mirrored, padding on the right), and the scan walks
it as the 'reverse' route of one bidirectional scan call that also does the averaging.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmssm_kernels import ScanPaths, selective_scan

BIDIRECTIONAL = ScanPaths.bidirectional(merge='mean')


class BiMambaMixer(nn.Module):

    def __init__(self, dim, d_state=16, d_conv=4, expand=2, dt_rank='auto', dt_min=0.001,
                 dt_max=0.1, dt_init_floor=1e-4, num_layers=1, scan_backend=None):
        super().__init__()
        self.d_inner = int(expand * dim)
        self.d_state = d_state
        self.d_conv = d_conv
        self.dt_rank = math.ceil(dim / 16) if dt_rank == 'auto' else int(dt_rank)
        self.scan_backend = scan_backend
        self.in_proj = nn.Linear(dim, self.d_inner * 2, bias=False)
        self.out_proj = nn.Linear(self.d_inner, dim, bias=False)
        for suffix in ('', '_b'):
            self.add_module('conv1d' + suffix, nn.Conv1d(self.d_inner, self.d_inner, d_conv,
                                                         groups=self.d_inner, padding=d_conv - 1))
            self.add_module('x_proj' + suffix,
                            nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False))
            self.add_module('dt_proj' + suffix, nn.Linear(self.dt_rank, self.d_inner))
            self.register_parameter(f'A{suffix}_log', nn.Parameter(torch.empty(self.d_inner, d_state)))
            self.register_parameter('D' + suffix, nn.Parameter(torch.empty(self.d_inner)))
        self.reset_parameters(dt_min, dt_max, dt_init_floor, num_layers)

    @torch.no_grad()
    def reset_parameters(self, dt_min, dt_max, dt_init_floor, num_layers):
        """Mamba's initialisation: S4D-real A, dt spread log-uniformly over [dt_min, dt_max] through
        the softplus, and out_proj scaled by 1/sqrt(depth) for the residual stream."""
        dt_std = self.dt_rank**-0.5
        for suffix in ('', '_b'):
            dt_proj = getattr(self, 'dt_proj' + suffix)
            nn.init.uniform_(dt_proj.weight, -dt_std, dt_std)
            dt = torch.exp(torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min))
                           + math.log(dt_min)).clamp(min=dt_init_floor)
            dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
            getattr(self, f'A{suffix}_log').copy_(
                torch.log(torch.arange(1, self.d_state + 1, dtype=torch.float32)).repeat(self.d_inner, 1))
            getattr(self, 'D' + suffix).fill_(1.0)
        nn.init.kaiming_uniform_(self.out_proj.weight, a=math.sqrt(5))
        self.out_proj.weight /= math.sqrt(num_layers)

    def forward(self, x):
        """x: (batch, L, dim) -> (batch, L, dim)."""
        L = x.shape[1]
        xz = self.in_proj(x).transpose(1, 2)  # (batch, 2*d_inner, L), a view
        u, z = xz.chunk(2, dim=1)
        pad = self.d_conv - 1
        u_fwd = self.conv1d(u)[..., :L]
        # the backward direction's causal conv, seen in forward token order
        u_bwd = F.conv1d(F.pad(u, (0, pad)), self.conv1d_b.weight.flip(-1), self.conv1d_b.bias,
                         groups=self.d_inner)
        u = F.silu(torch.stack((u_fwd, u_bwd), dim=1))  # (batch, 2, d_inner, L)
        x_proj = torch.stack((self.x_proj.weight, self.x_proj_b.weight))
        x_dbl = torch.einsum('bkdl,krd->bkrl', u, x_proj.to(u.dtype))
        dt, B, C = x_dbl.split((self.dt_rank, self.d_state, self.d_state), dim=2)
        dt_proj = torch.stack((self.dt_proj.weight, self.dt_proj_b.weight))
        delta = torch.einsum('bkrl,kdr->bkdl', dt, dt_proj.to(dt.dtype))
        A = -torch.exp(torch.cat((self.A_log, self.A_b_log)).float())
        y = selective_scan(
            u.flatten(1, 2), delta.flatten(1, 2), A, B, C,
            D=torch.cat((self.D, self.D_b)).float(), z=z,
            delta_bias=torch.cat((self.dt_proj.bias, self.dt_proj_b.bias)).float(),
            delta_softplus=True, paths=BIDIRECTIONAL, backend=self.scan_backend)
        return self.out_proj(y.transpose(1, 2))
