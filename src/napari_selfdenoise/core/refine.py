"""R3 refinement at inference (AP-BSN, Lee et al. CVPR 2022).

A blind-spot or masked network leaves some noise and structure-dependent bias; R3 runs
``passes`` more passes, each on the denoised image with a random ``fraction`` of its
pixels replaced by the noisy values, and averages them. The random choice of each pixel
is a hash of its noisy value, its four in-plane neighbours' and the pass number: it is
the same whichever tile reads the pixel, so tiled equals untiled (no global coordinates
are needed), and it is the same for all channels of the pixel.
"""

from __future__ import annotations

from typing import Callable

import torch

_M32 = 0xFFFFFFFF


def _mix(h: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (in int64, without overflow)."""
    h = h & _M32
    h = ((h ^ (h >> 16)) * 0x45D9F3B) & _M32
    h = ((h ^ (h >> 16)) * 0x45D9F3B) & _M32
    return h ^ (h >> 16)


def r3_mask(x: torch.Tensor, pass_index: int, fraction: float) -> torch.Tensor:
    """Pixels of ``x`` (B, C, *S) replaced by their noisy values in pass ``pass_index``.

    Returns a boolean ``(B, 1, *S)`` mask holding about ``fraction`` of the pixels.
    """
    bits = x[:, :1].float().contiguous().view(torch.int32).to(torch.int64) & _M32
    h = _mix(bits + 0x9E3779B1 * (pass_index + 1))
    for dim in (-2, -1):  # tile edges wrap around: they lie in the discarded context
        for step in (1, -1):
            h = _mix(h ^ torch.roll(bits, step, dims=dim))
    return (h.to(torch.float64) / float(_M32 + 1)) < fraction


def r3_refine(fn: Callable[[torch.Tensor], torch.Tensor], noisy: torch.Tensor,
              denoised: torch.Tensor, passes: int = 8, fraction: float = 0.16) -> torch.Tensor:
    """Mean of ``fn(denoised with a random fraction of pixels set back to noisy)``."""
    acc = None
    for t in range(passes):
        mixed = torch.where(r3_mask(noisy, t, fraction), noisy, denoised)
        y = fn(mixed).float()
        acc = y if acc is None else acc + y
    return acc / float(passes)
