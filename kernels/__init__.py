"""mmssm's shared selective scan (installed as ``mmssm_kernels``): pure torch + triton."""
from .interface import get_scan_backend, scan_backend, selective_scan, set_scan_backend
from .paths import ROUTES, ScanPaths
from .reference import selective_scan_ref

__all__ = ['selective_scan', 'selective_scan_ref', 'ScanPaths', 'ROUTES', 'set_scan_backend',
           'get_scan_backend', 'scan_backend']
