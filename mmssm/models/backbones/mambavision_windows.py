"""MambaVision's windows: which token of a stage's H x W map sits at which step of which window.

The official code zero-pads the map right and bottom to whole windows and runs every block on the
padded windows; the padded tokens then take part in the scans and the attention like image tokens
(so the released weights were trained with them, and only that mode reproduces them). With
``mask_padding`` they take no part: each window's image tokens come first, in row-major order, and
its padding after them, where the forward scan cannot carry it back; the mixer zeroes the padding
before its convs and the attention masks it out. A window is then as short as the fullest window,
so a map smaller than one window costs what the map costs, not what the window costs.
"""
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn.functional as F


@dataclass
class WindowLayout:
    hw: Tuple[int, int]  # the stage's map
    pad: Tuple[int, int]  # zeros added (bottom, right) before partitioning; official mode only
    index: torch.Tensor  # (num_windows * length,) map token behind each window step
    inverse: torch.Tensor  # (H * W,) window step of each map token
    valid: Optional[torch.Tensor]  # (num_windows, length) bool, None when nothing is padding
    length: int

    @property
    def num_windows(self) -> int:
        return self.index.numel() // self.length

    def partition(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, C, H, W) -> (batch * num_windows, length, C)."""
        if any(self.pad):
            x = F.pad(x, (0, self.pad[1], 0, self.pad[0]))
        tokens = x.flatten(2).transpose(1, 2)
        return tokens[:, self.index].reshape(-1, self.length, x.shape[1])

    def reverse(self, windows: torch.Tensor, batch: int) -> torch.Tensor:
        """(batch * num_windows, length, C) -> (batch, C, H, W), padding dropped."""
        tokens = windows.reshape(batch, -1, windows.shape[-1])[:, self.inverse]
        return tokens.transpose(1, 2).reshape(batch, -1, *self.hw)

    def token_mask(self, batch: int) -> Optional[torch.Tensor]:
        """(batch * num_windows, length) bool, True for image tokens; None when all are."""
        return None if self.valid is None else self.valid.repeat(batch, 1)


def window_layout(hw, window_size: int, mask_padding: bool, device=None) -> WindowLayout:
    H, W = hw
    ws = window_size
    pad_b, pad_r = (-H) % ws, (-W) % ws
    Hp, Wp = H + pad_b, W + pad_r
    nh, nw = Hp // ws, Wp // ws
    # the (row, column) of the padded map at step (r, c) of window (i, j), windows row-major
    rows = torch.arange(Hp, device=device).view(nh, 1, ws, 1).expand(nh, nw, ws, ws)
    cols = torch.arange(Wp, device=device).view(1, nw, 1, ws).expand(nh, nw, ws, ws)
    rows, cols = rows.reshape(nh * nw, ws * ws), cols.reshape(nh * nw, ws * ws)
    image = (rows < H) & (cols < W)
    if not mask_padding:
        index = rows * Wp + cols
        return WindowLayout((H, W), (pad_b, pad_r), index.flatten(), _inverse(rows, cols, image, W),
                            None, ws * ws)
    # image tokens first (a stable sort keeps them row-major), the window cut to the fullest one
    order = torch.argsort((~image).to(torch.uint8), dim=1, stable=True)
    rows, cols, image = (t.gather(1, order) for t in (rows, cols, image))
    length = int(image.sum(1).max())
    rows, cols, image = rows[:, :length], cols[:, :length], image[:, :length]
    index = torch.where(image, rows * W + cols, torch.zeros_like(rows))
    valid = None if bool(image.all()) else image
    return WindowLayout((H, W), (0, 0), index.flatten(), _inverse(rows, cols, image, W), valid,
                        length)


def _inverse(rows, cols, image, width):
    """The window step of each image token, row-major over the unpadded map."""
    steps = torch.arange(rows.numel(), device=rows.device).view_as(rows)
    inverse = torch.empty(int(image.sum()), dtype=torch.long, device=rows.device)
    inverse[rows[image] * width + cols[image]] = steps[image]
    return inverse
