"""Blind-spot network by architecture with a noise-model posterior (Laine et al. 2019).

The network (:class:`~napari_selfdenoise.core.models.bsn.BlindSpotNet`) never sees the
pixel it predicts, so every pixel enters the loss. Mean only (``noise_model="none"``):
MSE between its output and the noisy image. With a noise model it predicts the prior's
mean and variance per channel, the loss is the negative log-likelihood of the noisy
value and the output is the posterior mean (:mod:`~napari_selfdenoise.core.posterior`):
the denoiser module computes it from the noisy input it receives, so inference, preview
and calibration run it like any other network. Optional pixel-shuffle down-sampling
(AP-BSN) for spatially correlated noise: the patches are split into ``pd_train**2``
sub-images for training and the image into ``pd_infer**2`` at inference.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal, Optional

from pydantic import Field

from .base import Batch, Method, MethodParams, StepContext
from .n2v import _COMMON
from .pd_option import PixelShuffleParams, shuffled_patches

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ..config import NetworkConfig, TrainConfig
    from ..noise_model import NoiseModel


class BSNParams(PixelShuffleParams):
    """The noise model of the posterior, its parameters, and pixel shuffle."""

    #: the shifted U-Net's reach exceeds a plain patch's 12 x 12 sub-images: cut the
    #: training patches pd_train times larger (issue #13)
    sub_image_patches: ClassVar[bool] = True
    method: Literal["bsn"] = "bsn"
    noise_model: Literal["none", "gaussian", "poisson-gaussian"] = Field(
        "poisson-gaussian", description="none: mean only (MSE); gaussian or "
        "poisson-gaussian (var = a * signal + b): NLL loss and posterior-mean output.")
    noise_source: Literal["estimate", "given", "learn"] = Field(
        "estimate", description="Noise parameters estimated from the image, given (sigma / "
        "noise_a, noise_b in data units), or learned (starting from the estimate).")
    sigma: float = Field(1.0, ge=0.0, description="Gaussian noise: standard deviation in "
                         "data units (noise_source=given).")
    noise_a: float = Field(1.0, ge=0.0, description="Poisson-Gaussian: variance per unit "
                           "of signal, data units (noise_source=given).")
    noise_b: float = Field(0.0, description="Poisson-Gaussian: signal-independent "
                           "variance, data units (noise_source=given).")
    separate_z: bool = Field(False, description="3D: the two Z branches get their own "
                             "weights (anisotropic Z).")
    nll_beta: float = Field(1.0, ge=0.0, le=1.0, description="beta-NLL (Seitzer et al. "
                            "2022): each pixel's NLL gradient weighted by its predicted "
                            "variance**beta; 0: plain NLL (the paper's), 1: the prior mean "
                            "learns as fast as with MSE.")
    #: "zeros" here is what a model stored before the option means; new models get
    #: "replicate" from the method's defaults (:attr:`BSN.defaults`)
    padding: Literal["zeros", "replicate"] = Field(
        "zeros", description="Padding of the shifted convolutions: the edge values "
        "replicated (new models) or zeros (models saved before 2026-12-02); both keep "
        "the blind spot.")


def normalised_noise(params: BSNParams, noise: Optional["NoiseModel"], n_channels: int,
                     offsets: list[float], scales: list[float]) -> tuple[list, list]:
    """``(a, b)`` per channel in normalised units for the posterior."""
    from ..noise_model import NoiseModel

    if params.noise_source == "given" or noise is None:
        if params.noise_model == "gaussian":
            model = NoiseModel((0.0,) * n_channels, (params.sigma**2,) * n_channels)
        else:
            model = NoiseModel((params.noise_a,) * n_channels, (params.noise_b,) * n_channels)
    elif params.noise_model == "gaussian":  # the estimate's variance at the mean signal
        model = NoiseModel((0.0,) * n_channels, tuple(
            max(float(nv), 0.0) for nv in (noise.a[c] * offsets[c] + noise.b[c]
                                          for c in range(n_channels))))
    else:
        model = NoiseModel(tuple(max(v, 0.0) for v in noise.a), noise.b)
    norm = model.normalised(offsets, scales)
    return list(norm.a), list(norm.b)


class BSN(Method):
    """Blind-spot network: all pixels in the loss, optional posterior and pixel shuffle."""

    name = "bsn"
    title = "Blind-spot network"
    help = ("Blind-spot network (Laine et al.): four rotated half-plane branches, every "
            "pixel in the loss; posterior mean with a noise model; optional pixel shuffle.")
    citation = ("Laine, Karras, Lehtinen, Aila. High-Quality Self-Supervised Deep Image "
                "Denoising. NeurIPS 2019. Pixel shuffle: Lee, Son, Lee. AP-BSN. CVPR 2022.")
    citation_url = "https://arxiv.org/abs/1901.10277"
    Params = BSNParams
    # 8 filters and 4 patches a step (each through four rotated branches): 8x cheaper a
    # step than the common 16 x 16, and better at a fixed CPU budget on FMD (BPAE_B /
    # BPAE_G, 60 CPU-s, bf16, TTA: posterior +1.4 / +1.6 dB, mean only +1.9 / +0.6 dB;
    # docs/benchmarks.md section 7, "bsn per-step cost").
    # New models pad the shifted convolutions by replicating the edge; the field's own
    # default stays "zeros", which is what a model file stored without it was trained
    # with (correlated phantom, mean only with pixel shuffle, 60 CPU-s, 2 seeds: +0.65 /
    # +1.20 dB; FMD BPAE_B posterior with TTA level; docs/benchmarks.md section 7,
    # "Pixel shuffle after the fix").
    defaults = {**_COMMON, "batch_size": 4,
                "network": {**_COMMON["network"], "base_filters": 8},
                "params": {"padding": "replicate"}}
    settings = ("network.depth", "network.base_filters")
    networks = ("unet",)

    def build_network(self, network: "NetworkConfig", spatial_dims: int, n_channels: int,
                      params: Optional[MethodParams] = None) -> "torch.nn.Module":
        from ..models.bsn_denoiser import BSNDenoiser

        p = params if isinstance(params, BSNParams) else BSNParams()
        return BSNDenoiser(spatial_dims, n_channels, depth=network.depth,
                           filters=network.base_filters, noise_model=p.noise_model,
                           learn_noise=p.noise_source == "learn",
                           pd_infer=p.factors()[1], separate_z=p.separate_z,
                           nll_beta=p.nll_beta, padding=p.padding)

    def prepare_network(self, net: Any, config: "TrainConfig", noise: Optional["NoiseModel"],
                        offsets: list[float], scales: list[float]) -> None:
        if config.params.noise_model == "none":
            return
        a, b = normalised_noise(config.params, noise, len(offsets), offsets, scales)
        net.set_noise(a, b)

    def scoring_form(self, config: "TrainConfig") -> str:
        return "blind_spot"  # the prior mean (its posterior mean reads the pixel itself)

    def make_batch(self, x: "torch.Tensor", config: "TrainConfig",
                   generator: Optional["torch.Generator"], ctx: StepContext) -> Batch:
        return {"x": shuffled_patches(x, config.params, 2**config.network.depth,
                                     config.patch_size, generator)}

    def loss(self, net: Any, batch: Batch, config: "TrainConfig",
             ctx: StepContext) -> "torch.Tensor":
        return net.loss(batch["x"])

    def validation_batch(self, x: "torch.Tensor", config: "TrainConfig",
                         generator: Optional["torch.Generator"], ctx: StepContext) -> Batch:
        # every sub-image of each held-out tile once (training keeps a random subset)
        return {"x": shuffled_patches(x, config.params, 2**config.network.depth)}

    def validation_draws(self, config: "TrainConfig") -> bool:
        # no masks and, with pixel shuffle, every sub-image: a tile's loss is the same in
        # every copy, so each tile is validated once
        return False

    def validation_note(self, config: "TrainConfig", n_items: int, n_tiles: int) -> str:
        factor = config.params.factors()[0]
        shuffled = (f"as {n_items} pixel-shuffled sub-images (factor {factor}), each once, "
                    if factor > 1 else "")
        return shuffled + "no masks: every pixel in the loss (blind spot by architecture)"


METHOD = BSN()
