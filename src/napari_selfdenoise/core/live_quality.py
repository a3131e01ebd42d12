"""Estimated quality during training: the PSNR against the unknown clean image, live.

At every validation the network's J-invariant form
(:func:`~napari_selfdenoise.core.scoring.invariant_net_output`) runs on one small fixed
crop of the held-out validation band (:data:`LIVE_REGION`), and
:func:`~napari_selfdenoise.core.scoring.estimate_quality` turns its self-supervised loss
into an estimated PSNR with its range. Where the model delivers another output (a masking
method's plain pass, a posterior mean), the estimate is of that output: its single pass
(no TTA) in fp32 and Stein's divergence correction (:mod:`~napari_selfdenoise.core.sure`,
three passes), with the J-invariant form as the noise reference. It is carried by
:class:`~napari_selfdenoise.core.events.TrainStep` (``estimated_psnr``), logged in the
history, and the estimate of the kept (best) weights is stored in the model's
``info["estimated_quality"]`` (and so in every provenance record of the model).
The crop is small, so the estimate is a few-tenths-of-a-dB indicator; ``compare`` scores
on a larger region.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch

from .device import autocast
from .noise_level import noise_warning
from .scoring import Quality, data_range, estimate_quality

#: largest (Y, X) crop of the validation band the live estimate is computed on
LIVE_REGION = (96, 192)
#: pixels of the training region used for the PSNR's peak (subsampled)
PEAK_PIXELS = 1_000_000


class LiveQuality:
    """The estimated PSNR of the network on one fixed held-out crop, updated on demand."""

    def __init__(self, crop: np.ndarray, peak: float, device: torch.device,
                 amp: Optional[torch.dtype]) -> None:
        self.y = crop  # (1, C, [Z], Y, X), normalised
        self.x = torch.from_numpy(np.ascontiguousarray(crop)).to(device)
        self.peak, self.device, self.amp = float(peak), device, amp
        self.latest: Optional[Quality] = None
        self.best: Optional[Quality] = None
        self.form = "J-invariant form"
        #: noise correlated between pixels in the crop (core.noise_level), or None
        self.warning: Optional[str] = noise_warning(crop.reshape((-1,) + crop.shape[-2:]))

    @classmethod
    def from_regions(cls, train_regions: list, val_regions: list, device: torch.device,
                     amp: Optional[torch.dtype], paired: bool = False
                     ) -> Optional["LiveQuality"]:
        """From the normalised training / validation regions; None without a band.

        ``paired``: the regions hold input and target stacked along the channels (methods
        that need a target, e.g. Noise2Noise): only the input half is scored.
        """
        if not val_regions:
            return None
        band = val_regions[0][:1]
        if paired:
            band = band[:, : band.shape[1] // 2]
            train_regions = [r[:, : r.shape[1] // 2] for r in train_regions]
        sl = (slice(None),) * (band.ndim - 2) + tuple(
            slice(0, min(n, m)) for n, m in zip(band.shape[-2:], LIVE_REGION))
        crop = np.asarray(band[sl], dtype=np.float32)
        if min(crop.shape[-2:]) < 8:
            return None
        first = np.asarray(train_regions[0])
        planes = first.reshape((-1,) + first.shape[-2:])
        planes = planes[:: max(1, first.size // PEAK_PIXELS)]
        return cls(crop, data_range(planes), device, amp)

    def update(self, net: torch.nn.Module, method: Any, config: Any) -> Quality:
        """The estimate for ``net``'s current weights (eval mode, no gradient)."""
        from .scoring import delivered_is_scored, invariant_net_output

        was_training = net.training
        net.eval()
        with torch.no_grad(), autocast(self.device, self.amp):
            out = invariant_net_output(net, method, config, self.x).float().cpu().numpy()
        y = self.y.reshape((-1,) + self.y.shape[-2:])
        f = out.reshape(y.shape)
        if delivered_is_scored(method, config):
            self.latest = estimate_quality(y, f, f, self.peak)
        else:
            fy, div = self._delivered(net)
            self.latest = estimate_quality(y, fy.reshape(y.shape), f, self.peak,
                                           divergence=div.reshape(y.shape))
            self.form = "delivered output (Stein's estimate)"
        net.train(was_training)
        return self.latest

    @torch.no_grad()
    def _delivered(self, net: torch.nn.Module) -> tuple[np.ndarray, np.ndarray]:
        """The single (plain) pass on the crop and its divergence, fp32, normalised."""
        from .models import apply_padded
        from .sure import EPS_FRACTION, divergence, noise_std

        def fn(a: np.ndarray) -> np.ndarray:
            t = torch.from_numpy(np.ascontiguousarray(a)).to(self.device)
            return apply_padded(net, t).float().cpu().numpy()

        fy = fn(self.y)
        planes = self.y.reshape((-1,) + self.y.shape[-2:])
        return fy, divergence(fn, self.y, fy, EPS_FRACTION * noise_std(planes))

    def keep(self) -> None:
        """The latest estimate belongs to the weights just kept as the best."""
        self.best = self.latest

    def info(self) -> Optional[dict]:
        """What the model stores: the best weights' estimate and how it was made."""
        if self.best is None:
            return None
        return {**self.best.to_dict(), "region": list(self.y.shape[-2:]),
                "warning": self.warning,
                "form": self.form,
                "note": "J-invariant self-supervised loss on a held-out crop minus the "
                        "estimated noise variance (core.scoring), with Stein's divergence "
                        "correction where the delivered output is not J-invariant "
                        "(core.sure); peak: 0.1-99.9 percentile range of the training data"}
