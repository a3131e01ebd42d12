"""N2V2 (Höck et al., ECCV workshops 2022): Noise2Void without checkerboard artefacts.

Max-blur-pool instead of max-pool, no skip connection at the top level, and masked
pixels replaced by the median of their window without its centre.
"""

from __future__ import annotations

from typing import Literal

from .n2v import N2V
from .pd_option import PixelShuffleParams


class N2V2Params(PixelShuffleParams):
    """N2V2 has no parameters beyond the shared masking settings."""

    method: Literal["n2v2"] = "n2v2"


class N2V2(N2V):
    """Noise2Void with the N2V2 U-Net and median replacement."""

    name = "n2v2"
    title = "N2V2"
    help = "N2V2: Noise2Void without checkerboard artefacts (blur-pool, median replacement)."
    citation = ("Höck, Buchholz, Jug et al. N2V2 - Fixing Noise2Void Checkerboard Artifacts "
                "with Modified Sampling Strategies and a Tweaked Network Architecture. "
                "ECCV Workshops 2022.")
    citation_url = "https://arxiv.org/abs/2211.08512"
    Params = N2V2Params
    replacement = "median"
    n2v2_network = True
    networks = ("unet",)


METHOD = N2V2()
