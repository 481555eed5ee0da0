"""mmssm's shared selective scan (installed as ``mmssm_kernels``): pure torch + triton."""
from .interface import BACKENDS, selective_scan
from .paths import ROUTES, ScanPaths
from .reference import selective_scan_ref

__all__ = ['selective_scan', 'selective_scan_ref', 'ScanPaths', 'ROUTES', 'BACKENDS']
