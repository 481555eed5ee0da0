"""Measures the two ways to write the selective scan in an ONNX file, in ONNX Runtime on the CPU:

* ``scan``: what mmssm_kernels exports (kernels/export_scan.py): an ONNX Scan over the tokens, one
  elementwise recurrence step per token;
* ``chunked``: a Scan over chunks of ``--chunk`` tokens, each solved in closed form: pairwise decays
  exp(S_t - S_s) (S the running sum of dt*A inside the chunk, -inf above the diagonal, so nothing
  overflows), then the chunk's states as one weighted sum. Fewer, larger steps; T times the
  arithmetic.

Each is exported as one bidirectional/cross2d/forward scan at the shapes the families' 512x512
configs run (Vim-Ti's blocks, VMamba-T's first stage, MambaVision-T's stage-3 window) and timed
(median of --runs), with the file size and the largest difference from the oracle.

    python tools/deployment/benchmark_export_scan.py [--runs 5] [--chunk 16]
"""
import argparse
import os
import statistics
import tempfile
import time
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F
from torch._higher_order_ops.scan import scan

from mmssm_kernels import ScanPaths, export_scan, selective_scan
from mmssm_kernels.reference import _dt, selective_scan_ref

# (name, paths, channels per route, state size, tokens)
SHAPES = [
    ('Vim-Ti block (bidirectional, 32x32 patches)', ScanPaths.bidirectional(), 384, 16, 1024),
    ('VMamba-T stage 1 (cross2d, 128x128)', ScanPaths.cross2d((128, 128)), 96, 1, 16384),
    ('MambaVision-T stage 3 window (forward, 64x64)', ScanPaths.forward(), 160, 8, 4096),
]


def chunked_core(chunk):

    def core(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
        batch, Dt, L = u.shape
        G, N = B.shape[1], A.shape[1]
        dt = _dt(delta, delta_bias, delta_softplus)
        n = -(-L // chunk)
        pad = n * chunk - L  # identity steps: dt = 0 decays nothing and adds nothing

        def chunks(x):  # (batch, ..., L) -> (n, chunk, batch, ...)
            x = F.pad(x.float(), (0, pad))
            return x.reshape(*x.shape[:-1], n, chunk).movedim((-2, -1), (0, 1))

        dt_c = chunks(dt.view(batch, G, Dt // G, L))
        x_c = dt_c * chunks(u.view(batch, G, Dt // G, L))
        B_c, C_c = chunks(B).unsqueeze(-2), chunks(C).unsqueeze(-2)  # (n, T, batch, G, 1, N)
        A_g = A.float().view(G, Dt // G, N)
        mask = torch.ones(chunk, chunk, dtype=torch.bool).tril().view(chunk, chunk, 1, 1, 1, 1)

        def step(h, inputs):
            dt_s, x_s, B_s, C_s = inputs
            S = torch.cumsum(dt_s[..., None] * A_g, 0)  # (T, batch, G, Dg, N)
            decay = torch.exp((S[:, None] - S[None]).masked_fill(~mask, float('-inf')))
            hs = torch.exp(S) * h + (decay * (x_s[..., None] * B_s)[None]).sum(1)
            return hs[-1], (hs * C_s).sum(-1)

        last, y = scan(step, dt.new_zeros(batch, G, Dt // G, N), (dt_c, x_c, B_c, C_c))
        y = y.reshape(n * chunk, batch, Dt)[:L].permute(1, 2, 0)
        y = y + u.float() * D.float()[:, None]
        return y * F.silu(z.float()) if z is not None else y, last.reshape(batch, Dt, N)

    return core


class Scan(torch.nn.Module):

    def __init__(self, paths):
        super().__init__()
        self.paths = paths

    def forward(self, u, delta, A, B, C, D, z, bias):
        return selective_scan(u, delta, A, B, C, D, z, bias, delta_softplus=True,
                              paths=self.paths)


def inputs(paths, dim, N, L):
    g = torch.Generator().manual_seed(0)
    K = paths.num_routes
    shared = paths.needs_hw  # VMamba's routes share u
    u = torch.randn(1, dim if shared else K * dim, L, generator=g)
    return (u, torch.randn(1, K * dim, L, generator=g) - 2,
            -torch.arange(1, N + 1).float().repeat(K * dim, 1),
            torch.randn(1, K if shared else 1, N, L, generator=g),
            torch.randn(1, K if shared else 1, N, L, generator=g), torch.ones(K * dim),
            None if shared else torch.randn(1, K * dim, L, generator=g),
            torch.randn(K * dim) * 0.1)


def measure(module, args, runs, folder, name):
    import onnxruntime as ort
    path = os.path.join(folder, f'{name}.onnx')
    torch.onnx.export(module, args, path, dynamo=True, verbose=False)
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    names = [i.name for i in session.get_inputs()]
    feeds = {n: a.numpy() for n, a in zip(names, (a for a in args if a is not None))}
    out = session.run(None, feeds)[0]
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - start)
    return statistics.median(times), os.path.getsize(path), out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--runs', type=int, default=5)
    parser.add_argument('--chunk', type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for title, paths, dim, N, L in SHAPES:
            scan_args = inputs(paths, dim, N, L)
            expected = selective_scan_ref(*scan_args, delta_softplus=True, paths=paths).numpy()
            module = Scan(paths).eval()
            results = {'scan': measure(module, scan_args, args.runs, folder, 'scan')}
            with mock.patch.object(export_scan, 'scan_core_export', chunked_core(args.chunk)):
                results['chunked'] = measure(module, scan_args, args.runs, folder, 'chunked')
            print(f'{title}, {paths.num_routes * dim} channels, N={N}, {L} tokens:')
            for name, (seconds, size, out) in results.items():
                print(f'  {name:8s} {seconds * 1e3:8.1f} ms  file {size / 1024:6.1f} KiB  '
                      f'max |diff| vs oracle {np.abs(out - expected).max():.2e}')


if __name__ == '__main__':
    main()
