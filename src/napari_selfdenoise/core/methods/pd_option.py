"""The pixel-shuffle option shared by the methods that offer it (``bsn``, ``ams``).

Not a method: its :class:`PixelShuffleParams` fields join a method's own parameter model,
``pd_train = "auto"`` is chosen from the training data (:meth:`PixelShuffleParams.resolve`:
the noise's correlation range plus one, :mod:`~napari_selfdenoise.core.noise_correlation`),
and the helpers cut training patches into sub-images (``bsn``: from patches ``pd_train``
times larger, :func:`sampling_patch`) and wrap the network for inference
(:mod:`napari_selfdenoise.core.pixel_shuffle`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Optional, Sequence, Union

import annotated_types
from pydantic import Field

from ..validation import UserError
from .base import MethodParams

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

#: ``pd_train``'s bounds (AP-BSN trains with 5)
PD_TRAIN_MIN, PD_TRAIN_MAX, PD_TRAIN_DEFAULT = 2, 8, 5
#: ``pd_train``'s value that leaves the factor to the data
AUTO = "auto"


def auto_factor(reach: int) -> int:
    """The training factor ``pd_train = "auto"`` gives noise correlated up to lag
    ``reach``: ``reach + 1`` (sub-image pixels that far apart are independent), clamped
    to 2..8."""
    return min(max(int(reach) + 1, PD_TRAIN_MIN), PD_TRAIN_MAX)


class PixelShuffleParams(MethodParams):
    """Pixel-shuffle down-sampling (AP-BSN): off by default."""

    #: training patches cut ``pd_train`` times larger so each sub-image is a patch
    #: (:func:`sampling_patch`); the blind-spot network needs it, the masking methods
    #: keep plain patches (ams on the correlated phantom, 300 steps: 24.59 dB with
    #: plain patches, 23.94 with larger ones)
    sub_image_patches: ClassVar[bool] = False

    pixel_shuffle: bool = Field(
        False, description="Pixel-shuffle down-sampling for spatially correlated noise "
        "(AP-BSN): train on pd_train^2 sub-images, predict on pd_infer^2. Hurts on "
        "pixel-independent noise.", json_schema_extra={"cli_values": ["pd_train", "pd_infer"]})
    pd_train: Union[Annotated[int, annotated_types.Ge(PD_TRAIN_MIN),
                              annotated_types.Le(PD_TRAIN_MAX)], Literal["auto"]] = Field(
        PD_TRAIN_DEFAULT, description="Pixel-shuffle factor in training (5 in AP-BSN); "
        "auto: the noise's correlation range in the training data plus one (the model "
        "stores the factor chosen).")
    pd_infer: int = Field(2, ge=1, le=8, description="Pixel-shuffle factor at inference "
                          "(2 in AP-BSN; 1: full resolution).")

    def factors(self) -> tuple[int, int]:
        """``(train, inference)`` factors, ``(1, 1)`` when pixel shuffle is off.

        Raises
        ------
        ValueError
            ``pd_train`` is still ``"auto"`` (training resolves it first, :meth:`resolve`).
        """
        if not self.pixel_shuffle:
            return (1, 1)
        if self.pd_train == AUTO:
            raise ValueError("pd_train 'auto' is chosen from the training data: "
                             "resolve(arrays) first")
        return (int(self.pd_train), self.pd_infer)

    def resolve(self, arrays: "Sequence[np.ndarray]") -> tuple["PixelShuffleParams", list]:
        """``pd_train = "auto"`` made the factor the training ``arrays`` (raw, ``(N, C,
        *S)``) call for, and the ``(text, level)`` messages that report it.

        The factor is the noise's correlation range plus one (sub-image pixels are then
        ``range + 1`` apart in the image: independent), at least 2 and at most 8. Noise
        with no measurable correlation (range 0) gets the smallest factor, 2, and a
        warning: pixel shuffle only costs resolution on pixel-independent noise. With
        pixel shuffle off the unused factor becomes the default, 5.
        """
        if self.pd_train != AUTO:
            return self, []
        if not self.pixel_shuffle:
            return self.model_copy(update={"pd_train": PD_TRAIN_DEFAULT}), []
        from ..noise_correlation import data_correlation_range

        reach, found = data_correlation_range(arrays)
        factor = auto_factor(reach)
        why = (f"the noise is correlated up to lag {reach}" if reach else
               "no lag of the noise is correlated" if found else
               "the noise's correlation could not be measured: the images are too small")
        lags = f"; autocorrelation at lags 1-3: {found}" if found else ""
        notes = [(f"pixel shuffle: training factor {factor} (auto: {why}{lags})", "info")]
        if reach == 0:
            notes.append(("pixel shuffle: pixel shuffle only hurts on pixel-independent "
                          f"noise (AP-BSN); training with the smallest factor, {factor}: "
                          "unless the noise is known to be correlated, train without pixel "
                          "shuffle", "warning"))
        elif reach + 1 >= PD_TRAIN_MAX:  # the detector measures lags up to 7
            notes.append((f"pixel shuffle: the noise is correlated at lag {reach} and "
                          f"perhaps beyond; the factor is capped at {PD_TRAIN_MAX}, so its "
                          "sub-images may stay correlated", "warning"))
        return self.model_copy(update={"pd_train": factor}), notes


def sampling_patch(params: Any, patch: Sequence[int], shapes: Sequence[Sequence[int]],
                   multiple: int) -> tuple[int, ...]:
    """The patch to cut from regions of spatial ``shapes``: ``patch`` itself, or with
    pixel shuffle ``pd_train`` times it in Y and X, so each sub-image is as large as a
    patch.

    Sub-images of a plain patch (64 / 5: 12 x 12) are smaller than the network's
    receptive field: it learns only border-dominated views and fails on the far larger
    sub-images of inference (issue #13: the mean-only ``bsn`` with pixel shuffle fell
    below the noisy input). The larger patch is cut down to fit the smallest region, in
    multiples of ``pd_train * multiple``, never below ``patch``. Only for parameters
    whose ``sub_image_patches`` is set (``bsn``).
    """
    s = params.factors()[0] if getattr(params, "sub_image_patches", False) else 1
    patch = tuple(int(p) for p in patch)
    if s == 1:
        return patch
    m = s * int(multiple)
    out = list(patch)
    for axis in (-2, -1):
        limit = min(int(shape[axis]) for shape in shapes)
        out[axis] = max(patch[axis], (min(patch[axis] * s, limit) // m) * m)
    return tuple(out)


def shuffled_patches(x: "torch.Tensor", params: Any, multiple: int,
                     patch: Optional[Sequence[int]] = None,
                     generator: Optional["torch.Generator"] = None) -> "torch.Tensor":
    """Training patches ``x`` as their ``pd_train**2`` sub-images (cropped to fit).

    With ``patch`` (the configured patch size) only a random subset of the sub-images is
    kept, as many as hold ``len(x)`` patches' worth of pixels: patches cut
    ``pd_train`` times larger (:func:`sampling_patch`) cost a step what plain patches do.
    """
    import torch

    from ..pixel_shuffle import crop_to_multiple, shuffle_down

    s = params.factors()[0]
    if s == 1:
        return x
    y = shuffle_down(crop_to_multiple(x, s * int(multiple)), s)
    if patch is None:
        return y
    keep = math.ceil(len(x) * math.prod(patch) / math.prod(y.shape[2:]))
    if keep >= len(y):
        return y
    pick = torch.randperm(len(y), generator=generator, device=generator.device
                          if generator is not None else y.device)[:keep]
    return y[pick.to(y.device)]


def wrap_for_inference(net: "torch.nn.Module", params: Any) -> "torch.nn.Module":
    """``net`` run on ``pd_infer**2`` sub-images when pixel shuffle is on."""
    from ..pixel_shuffle import PixelShuffled

    return PixelShuffled(net, params.factors()[1]) if params.pixel_shuffle else net


def with_inference_factor(bundle: Any, factor: Optional[int], source: str = "the model"
                          ) -> Any:
    """``bundle`` predicting on ``factor**2`` pixel-shuffled sub-images, its weights
    unchanged (the prediction setting ``pixel_shuffle_infer``; None: as trained).

    The copy's ``pd_infer`` is ``factor``, so its network's ``halo`` and ``size_multiple``
    (which the tile plan aligns to), a distributed worker's copy and an output's embedded
    model all follow it. A :class:`~napari_selfdenoise.core.validation.UserError` naming
    ``source`` when the model was trained without pixel shuffle.
    """
    if factor is None:
        return bundle
    params = bundle.config.params
    if not getattr(params, "pixel_shuffle", False):
        raise UserError(
            f"{source} ({bundle.method}) was trained without pixel shuffle, so a "
            f"pixel-shuffle factor at inference ({factor}) does not apply: leave it unset, "
            "or train with --pixel-shuffle")
    if params.pd_infer == int(factor):
        return bundle
    new = type(params).model_validate({**params.model_dump(), "pd_infer": int(factor)})
    return dataclasses.replace(bundle, config=bundle.config.model_copy(update={"params": new}))


def trained_network(net: "torch.nn.Module") -> "torch.nn.Module":
    """The network the loss trains (the wrapped one, without pixel shuffle)."""
    from ..pixel_shuffle import PixelShuffled

    return net.inner if isinstance(net, PixelShuffled) else net


def pd_multiple(config: Any) -> int:
    """The trained network's size multiple (U-Net: ``2 ** depth``; DnCNN: 1)."""
    return 2**config.network.depth if config.network.arch == "unet" else 1


class PixelShuffleOption:
    """Mixin (before :class:`~.base.Method`) building the network of a method with the
    pixel-shuffle option (its ``Params`` inherit :class:`PixelShuffleParams`; its
    ``make_batch`` starts with :func:`shuffled_patches` and its ``loss`` trains
    :func:`trained_network`)."""

    def build_network(self, network: Any, spatial_dims: int, n_channels: int,
                      params: Any = None) -> "torch.nn.Module":
        net = super().build_network(network, spatial_dims, n_channels)  # type: ignore[misc]
        return wrap_for_inference(net, params if params is not None else self.Params())  # type: ignore[attr-defined]
