"""Scan paths: the orders in which one scan call visits the tokens of a sequence.

A path is a tuple of routes. Route ``k`` owns channel block ``k`` of ``delta``, ``A``, ``D`` and
``delta_bias`` (and of ``u`` and ``z`` when they carry one block per route), walks the tokens in its
own order and writes each result back at the token's own position. So Vim's reverse direction and
VMamba's column-major routes need no flipped or transposed copy from the caller, and with ``merge``
the routes' outputs at a token are summed (VMamba's cross-merge) or averaged (Vim's bimamba v2).
"""
import numbers
from dataclasses import dataclass
from typing import Optional, Tuple

import torch

#: Route name -> the code the Triton kernels take as a constexpr: bit 0 walks the tokens backwards,
#: bit 1 walks a row-major ``H x W`` token grid column by column.
ROUTE_CODES = {'forward': 0, 'reverse': 1, 'col': 2, 'col_reverse': 3}
ROUTES = tuple(ROUTE_CODES)
MERGES = (None, 'sum', 'mean')


@dataclass(frozen=True)
class ScanPaths:
    routes: Tuple[str, ...] = ('forward', )
    hw: Optional[Tuple[int, int]] = None
    merge: Optional[str] = None

    def __post_init__(self):
        if not self.routes:
            raise ValueError('ScanPaths needs at least one route')
        unknown = [r for r in self.routes if r not in ROUTES]
        if unknown:
            raise ValueError(f'unknown scan route(s) {unknown}; known routes are {ROUTES}')
        if self.merge not in MERGES:
            raise ValueError(f'unknown merge {self.merge!r}; use one of {MERGES}')
        if self.hw is not None:
            hw = self.hw
            # symbolic sizes (torch.export) and a jit trace's 0-d integer tensors (FLOP
            # counting) are whole numbers too
            if not (isinstance(hw, (tuple, list)) and len(hw) == 2 and all(
                    (isinstance(s, (numbers.Integral, torch.SymInt)) and not isinstance(s, bool))
                    or (isinstance(s, torch.Tensor) and s.dim() == 0
                        and not s.is_floating_point() and s.dtype != torch.bool)
                    for s in hw)):
                raise ValueError(f'hw must be (H, W), two whole numbers, got {hw!r}')
            # a tuple keeps the paths hashable and comparable whatever sequence was passed
            object.__setattr__(self, 'hw', tuple(hw))
        if self.needs_hw and (self.hw is None or min(self.hw) < 1):
            raise ValueError(f'routes {self.routes} walk a 2-D grid: pass hw=(H, W), got {self.hw}')

    @classmethod
    def forward(cls) -> 'ScanPaths':
        return cls(('forward', ))

    @classmethod
    def reverse(cls) -> 'ScanPaths':
        return cls(('reverse', ))

    @classmethod
    def bidirectional(cls, merge: Optional[str] = 'mean') -> 'ScanPaths':
        """Vim: block 0 scans forward, block 1 backward."""
        return cls(('forward', 'reverse'), merge=merge)

    @classmethod
    def cross2d(cls, hw: Tuple[int, int], merge: Optional[str] = 'sum') -> 'ScanPaths':
        """VMamba's cross-scan, in its block order: rows, columns, rows reversed, columns reversed."""
        return cls(('forward', 'col', 'reverse', 'col_reverse'), hw=tuple(hw), merge=merge)

    @property
    def num_routes(self) -> int:
        return len(self.routes)

    @property
    def needs_hw(self) -> bool:
        return any(r.startswith('col') for r in self.routes)

    @property
    def is_plain_forward(self) -> bool:
        return self.routes == ('forward', )

    def check_length(self, seqlen: int) -> None:
        if self.needs_hw and self.hw[0] * self.hw[1] != seqlen:
            raise ValueError(f'scan path grid hw={self.hw} has {self.hw[0] * self.hw[1]} tokens '
                             f'but the sequence has {seqlen}')

    def token_order(self, seqlen: int, device=None) -> torch.Tensor:
        """(num_routes, seqlen) int64: the token index each route visits at each step."""
        self.check_length(seqlen)
        steps = torch.arange(seqlen, device=device)
        orders = []
        for route in self.routes:
            # column-major = the row-major grid transposed (a view, not index arithmetic: that
            # also exports with a symbolic grid size)
            order = steps.view(self.hw).t().reshape(-1) if route.startswith('col') else steps
            orders.append(order.flip(0) if route.endswith('reverse') else order)
        return torch.stack(orders)
