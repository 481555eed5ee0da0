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
        # padded whatever the pads (zero pads copy): no branch on the size, which may be symbolic
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
    nh, nw = (H + pad_b) // ws, (W + pad_r) // ws
    # every index is arithmetic on aranges of the map's sides (no sorting, masking or reading
    # back a count), so the layout also traces with a symbolic map size for export
    rows, cols = torch.arange(H, device=device)[:, None], torch.arange(W, device=device)[None]
    window = (rows // ws) * nw + cols // ws  # of each map token
    if not mask_padding:
        # step (r, c) of window (i, j) is the padded map's (i*ws + r, j*ws + c)
        r = torch.arange(nh, device=device).view(nh, 1, 1, 1) * ws + torch.arange(
            ws, device=device).view(1, 1, ws, 1)
        c = torch.arange(nw, device=device).view(1, nw, 1, 1) * ws + torch.arange(
            ws, device=device).view(1, 1, 1, ws)
        index = (r * (W + pad_r) + c).flatten()
        inverse = window * (ws * ws) + (rows % ws) * ws + cols % ws
        return WindowLayout((H, W), (pad_b, pad_r), index, inverse.flatten(), None, ws * ws)
    # window (i, j) holds an image block of rh_i x cw_j tokens; they come first, row-major, then
    # its padding; the windows are cut to the fullest one (the first)
    length = min(H, ws) * min(W, ws)
    rh = (H - torch.arange(nh, device=device) * ws).clamp(max=ws).view(nh, 1, 1)
    cw = (W - torch.arange(nw, device=device) * ws).clamp(max=ws).view(1, nw, 1)
    step = torch.arange(length, device=device)
    image = step < rh * cw  # (nh, nw, length)
    r = torch.arange(nh, device=device).view(nh, 1, 1) * ws + step // cw
    c = torch.arange(nw, device=device).view(1, nw, 1) * ws + step % cw
    index = torch.where(image, r * W + c, torch.zeros_like(r)).flatten()
    inverse = window * length + (rows % ws) * cw.flatten()[cols // ws] + cols % ws
    # the last window (smallest image block) is full only when every window is
    full = H - (nh - 1) * ws == min(H, ws) and W - (nw - 1) * ws == min(W, ws)
    valid = None if full else image.view(nh * nw, length)
    return WindowLayout((H, W), (0, 0), index, inverse.flatten(), valid, length)
