"""The selective scan in standard operators, for exporting a model (ONNX).

The CPU path's passes are ``torch.library`` custom ops and the CUDA path is Triton: an exporter
would write either as an operator that only mmssm_kernels can run. Here the recurrence is
torch's ``scan`` higher-order op over the tokens, which ``torch.onnx.export`` (dynamo) writes as
one ONNX ``Scan`` whose body is a handful of elementwise ops on (batch, channels, N): the file
runs in any ONNX runtime, its size does not grow with the sequence, and the length may be a
dynamic axis. :func:`mmssm_kernels.selective_scan` takes this path by itself while
``torch.onnx.export`` / ``torch.export`` trace a model (``torch.compiler.is_exporting()``).

A chunked closed form (a Scan over chunks of 16 tokens, each solved with pairwise decays) was
measured against it in ONNX Runtime on the CPU (tools/deployment/benchmark_export_scan.py) and
lost at every family's shape: 1.8x to 6.9x slower, with more rounding error (README, Deployment).

Forward only (no autograd): exporting is for inference.
"""
import torch
from torch._higher_order_ops.scan import scan_op

from .reference import _dt, route_scan


def scan_core_export(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    """The core of :func:`kernels.reference.route_scan`: u, delta, z (batch, Dt, L); B, C
    (batch, G, N, L); A (Dt, N); D, delta_bias (Dt,). Returns the fp32 output (batch, Dt, L) and
    the last state (batch, Dt, N)."""
    batch, Dt, L = u.shape
    G, N = B.shape[1], A.shape[1]
    dt = _dt(delta, delta_bias, delta_softplus)
    # time-major: the Scan walks dim 0; each step sees (batch, G, Dt // G[, N]) blocks so that a
    # group's B and C broadcast over its channels without being repeated
    dt_t = dt.permute(2, 0, 1).reshape(L, batch, G, Dt // G)
    x_t = dt_t * u.float().permute(2, 0, 1).reshape(L, batch, G, Dt // G)
    B_t = B.float().permute(3, 0, 1, 2).unsqueeze(3)  # (L, batch, G, 1, N)
    C_t = C.float().permute(3, 0, 1, 2).unsqueeze(3)
    A_g = A.float().reshape(G, Dt // G, N)

    h0 = dt.new_zeros(batch, G, Dt // G, N)
    # the scan op itself, not torch's scan() front end, which compiles the step with dynamo on
    # every call (seconds per layer at export): the op traces it directly. Its arguments are
    # flat: carries, per-token inputs, then the tensors the step closes over.
    last, y = scan_op(_step, [h0], [dt_t, x_t, B_t, C_t], [A_g])
    y = y.reshape(L, batch, Dt).permute(1, 2, 0)
    if D is not None:
        y = y + u.float() * D.float()[:, None]
    if z is not None:
        y = y * torch.nn.functional.silu(z.float())
    return y, last.reshape(batch, Dt, N)


def _step(h, dt_s, x_s, B_s, C_s, A_g):
    """One token: (next state, output) from the state and the token's dt, dt*u, B, C."""
    h = torch.exp(dt_s[..., None] * A_g) * h + x_s[..., None] * B_s
    return [h, (h * C_s).sum(-1)]


def export_selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state,
                          paths, out_dtype):
    """:func:`mmssm_kernels.selective_scan` (checked arguments) in standard operators."""
    return route_scan(scan_core_export, u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                      return_last_state, paths, out_dtype)

