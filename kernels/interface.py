"""The one selective-scan entry point: argument checks, dtype rules and backend dispatch."""
import os
from contextlib import contextmanager
from functools import lru_cache
from typing import NamedTuple

import torch

from .export_scan import export_selective_scan
from .paths import ScanPaths
from .reference import route_scan, scan_core_torch

BACKENDS = ('auto', 'triton', 'torch')
HALF_OR_FLOAT = (torch.float32, torch.float16, torch.bfloat16)
_backend = os.environ.get('MMSSM_SCAN_BACKEND', 'auto')


def set_scan_backend(name: str) -> None:
    """'auto' (Triton on CUDA tensors, PyTorch elsewhere), 'triton' or 'torch', for every later
    call; the environment variable MMSSM_SCAN_BACKEND sets the starting value."""
    global _backend
    _check_backend(name)
    _backend = name


def get_scan_backend() -> str:
    return _backend


@contextmanager
def scan_backend(name: str):
    previous = get_scan_backend()
    set_scan_backend(name)
    try:
        yield
    finally:
        set_scan_backend(previous)


def _check_backend(name):
    if name not in BACKENDS:
        raise ValueError(f'unknown scan backend {name!r}; use one of {BACKENDS}')


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
    """
    if not isinstance(paths, ScanPaths):
        raise TypeError(f'paths must be a kernels ScanPaths, got {type(paths).__name__}')
    exporting = torch.compiler.is_exporting()
    # torch.compile and the exporters check once while they trace (they guard on the shapes,
    # which may be symbolic and then cannot be cached)
    check = _check if exporting or torch.compiler.is_compiling() else _cached_check
    check(*map(_spec, (u, delta, A, B, C, D, z, delta_bias)), paths, out_dtype)
    if exporting:
        # an exported file must hold standard operators, not the custom ops or Triton kernels
        return export_selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                     return_last_state, paths, out_dtype or u.dtype)
    name = backend or _backend
    _check_backend(name)
    if name == 'auto':
        name = 'triton' if u.is_cuda else 'torch'
    out_dtype = out_dtype or u.dtype
    if name == 'triton':
        from .triton_scan import triton_selective_scan
        return triton_selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                     return_last_state, paths, out_dtype)
    return route_scan(scan_core_torch, u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                      return_last_state, paths, out_dtype)


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
