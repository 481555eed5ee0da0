"""The one selective-scan entry point: argument checks, dtype rules and backend dispatch."""
import os
from functools import lru_cache
from typing import NamedTuple

import torch

from .export_scan import export_selective_scan
from .paths import ROUTE_CODES, ScanPaths

BACKENDS = ('auto', 'triton', 'torch')  # 'auto': Triton for CUDA tensors, PyTorch for the others
HALF_OR_FLOAT = (torch.float32, torch.float16, torch.bfloat16)
# The scan backend has two handles: this global default, read once when mmssm_kernels is imported,
# and the ``backend`` of a call (a backbone's ``scan_backend`` setting), which wins when given.
DEFAULT_BACKEND = os.environ.get('MMSSM_SCAN_BACKEND', 'auto')


def _backend_of(backend):
    if backend is None:
        if DEFAULT_BACKEND not in BACKENDS:
            raise ValueError(f'MMSSM_SCAN_BACKEND={DEFAULT_BACKEND!r} is not a scan backend; set '
                             f'it to one of {BACKENDS} or unset it')
        return DEFAULT_BACKEND
    if backend not in BACKENDS:
        raise ValueError(f'unknown scan backend {backend!r}; use one of {BACKENDS}, or None for '
                         f'the global default (MMSSM_SCAN_BACKEND)')
    return backend


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   return_last_state=False, paths: ScanPaths = ScanPaths(), out_dtype=None,
                   backend=None):
    """mamba_ssm's ``selective_scan_fn`` over one or more scan routes.

    With K = ``paths.num_routes`` and ``dim`` channels per route:
      u, z:           (batch, dim or K*dim, L); one block is shared by every route
      delta:          (batch, K*dim, L)
      A:              (K*dim, N) float32, usually negative
      B, C:           (batch, N, L), or grouped (batch, G, N, L) with G == 1 or a multiple of K,
                      channel c of a route block using group c // (K*dim // G)
      D, delta_bias:  (K*dim,) float32
    Per channel: h_t = exp(dt_t A) h_{t-1} + dt_t B_t u_t, y_t = C_t h_t + D u_t, times silu(z_t),
    dt = softplus(delta + delta_bias) when ``delta_softplus``. States and sums are float32.
    Returns y, (batch, dim, L) when ``paths.merge`` else (batch, K*dim, L), in ``out_dtype``
    (default u's dtype), and with ``return_last_state`` also the final states (batch, K*dim, N).
    ``backend``: one of ``BACKENDS``; None takes the global default, the environment variable
    MMSSM_SCAN_BACKEND ('auto' when unset).
    """
    name = _checked_backend(u, delta, A, B, C, D, z, delta_bias, paths, out_dtype, backend)
    if torch.compiler.is_exporting():
        # an exported file must hold standard operators, not the custom ops or Triton kernels
        return export_selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                     return_last_state, paths, out_dtype or u.dtype)
    out_dtype = out_dtype or u.dtype
    if name == 'triton':
        from .triton_scan import triton_selective_scan
        return triton_selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                     return_last_state, paths, out_dtype)
    from .torch_scan import torch_selective_scan
    return torch_selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                return_last_state, paths, out_dtype)


def _checked_backend(u, delta, A, B, C, D, z, delta_bias, paths, out_dtype, backend):
    if not isinstance(paths, ScanPaths):
        raise TypeError(f'paths must be a kernels ScanPaths, got {type(paths).__name__}')
    # torch.compile and the exporters check once while they trace (they guard on the shapes,
    # which may be symbolic and then cannot be cached)
    tracing = torch.compiler.is_compiling() or torch.compiler.is_exporting()
    check = _check if tracing else _cached_check
    check(*map(_spec, (u, delta, A, B, C, D, z, delta_bias)), paths, out_dtype)
    return backend_for(u.device, backend)


def backend_for(device, backend=None):
    """'triton' or 'torch': the path a scan on ``device`` takes with ``backend`` (None: the
    global default)."""
    name = _backend_of(backend)
    if name == 'auto':
        name = 'triton' if torch.device(device).type == 'cuda' else 'torch'
    return name


class ScanRecord(NamedTuple):
    """What :func:`selective_scan_bwd` needs besides tensors: the backend that ran the forward
    and the scan's settings."""
    backend: str
    delta_softplus: bool
    paths: ScanPaths


def selective_scan_fwd(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                       paths: ScanPaths = ScanPaths(), out_dtype=None, backend=None):
    """:func:`selective_scan` without autograd, for a fused layer that runs its own backward
    (as mamba_ssm's MambaInnerFn calls ``selective_scan_cuda.fwd`` and ``.bwd``). B and C are
    (batch, G, N, L). Returns the output, the fp32 states the backward restarts from (for the
    layer to save with its other tensors) and a :class:`ScanRecord`."""
    name = _checked_backend(u, delta, A, B, C, D, z, delta_bias, paths, out_dtype, backend)
    out_dtype = out_dtype or u.dtype
    if name == 'triton':
        from .triton_scan import scan_triton_fwd
        # the kernels keep no states: their backward recomputes them chunk by chunk
        out, _ = scan_triton_fwd(
            u, delta, A, B, C, D, z, delta_bias, delta_softplus,
            [ROUTE_CODES[r] for r in paths.routes], list(paths.hw or ()), paths.merge or '',
            out_dtype)
        states = u.new_empty(0, dtype=torch.float32)
    else:
        from .torch_scan import op_args, scan_torch_fwd
        out, _, states = scan_torch_fwd(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                        *op_args(paths), out_dtype, True)
    return out, states, ScanRecord(name, delta_softplus, paths)


def selective_scan_bwd(record: ScanRecord, u, delta, A, B, C, D, z, delta_bias, states, dout):
    """Gradients of u, delta, A, B, C, D, z, delta_bias (None for the absent ones) of the
    forward :func:`selective_scan_fwd` ran with these inputs."""
    paths = record.paths
    if record.backend == 'triton':
        from .triton_scan import scan_triton_bwd
        grads = scan_triton_bwd(u, delta, A, B, C, D, z, delta_bias, dout, None,
                                record.delta_softplus, [ROUTE_CODES[r] for r in paths.routes],
                                list(paths.hw or ()), paths.merge or '')
    else:
        from .torch_scan import op_args, scan_torch_bwd
        grads = scan_torch_bwd(u, delta, A, B, C, D, z, delta_bias, states, dout, None,
                               record.delta_softplus, *op_args(paths))
    return [None if t is None else g for t, g in zip((u, delta, A, B, C, D, z, delta_bias), grads)]


class _Spec(NamedTuple):
    """What the checks look at, hashable: a call with the same shapes, dtypes and devices as an
    earlier one is not checked again (a layer calls with the same ones every step)."""
    shape: tuple
    dtype: torch.dtype
    device: torch.device


def _spec(t):
    return None if t is None else _Spec(tuple(t.shape), t.dtype, t.device)


def _check(u, delta, A, B, C, D, z, delta_bias, paths, out_dtype):
    if out_dtype is not None and out_dtype not in HALF_OR_FLOAT:
        raise TypeError(f'selective_scan: out_dtype must be a floating type (float32, float16 or '
                        f'bfloat16), got {out_dtype}')
    for name, t in (('u', u), ('delta', delta), ('B', B), ('C', C), ('z', z)):
        if t is not None and t.dtype not in HALF_OR_FLOAT:
            raise TypeError(f'selective_scan: {name} has unsupported dtype {t.dtype}; '
                            f'use float32, float16 or bfloat16')
    for name, t in (('A', A), ('D', D), ('delta_bias', delta_bias)):
        if t is not None and t.dtype != torch.float32:
            raise TypeError(f'selective_scan: {name} must be float32 (a parameter), got {t.dtype}')
    if len(delta.shape) != 3:
        raise ValueError(f'selective_scan: delta must be (batch, K*dim, L), got {delta.shape}')
    batch, total, L = delta.shape
    K = paths.num_routes
    if total % K:
        raise ValueError(f'selective_scan: delta has {total} channels, not a multiple of the '
                         f'{K} routes of {paths.routes}')
    paths.check_length(L)
    dim = total // K
    if len(A.shape) != 2 or A.shape[0] != total:
        raise ValueError(f'selective_scan: A must be ({total}, N), got {A.shape}')
    N = A.shape[1]
    for name, t in (('u', u), ('z', z)):
        if t is not None and (len(t.shape) != 3 or t.shape[0] != batch or t.shape[2] != L
                              or t.shape[1] not in (dim, total)):
            raise ValueError(f'selective_scan: {name} must be ({batch}, {dim} or {total}, {L}), '
                             f'got {t.shape}')
    for name, t in (('B', B), ('C', C)):
        G = t.shape[1] if len(t.shape) == 4 else 1
        if (len(t.shape) not in (3, 4) or t.shape[0] != batch or t.shape[-2:] != (N, L)
                or total % G or (G > 1 and G % K)):
            raise ValueError(f'selective_scan: {name} must be ({batch}, {N}, {L}) or '
                             f'({batch}, G, {N}, {L}) with G dividing {total} and either 1 or a '
                             f'multiple of the {K} routes, got {t.shape}')
    for name, t in (('D', D), ('delta_bias', delta_bias)):
        if t is not None and t.shape != (total, ):
            raise ValueError(f'selective_scan: {name} must be ({total},), got {t.shape}')
    devices = {t.device for t in (u, delta, A, B, C, D, z, delta_bias) if t is not None}
    if len(devices) > 1:
        raise ValueError(f'selective_scan: inputs are on several devices {sorted(map(str, devices))}')


_cached_check = lru_cache(maxsize=256)(_check)
