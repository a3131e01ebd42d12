"""Validated settings shared by the widgets, presets, the CLI and model files.

Every model forbids unknown keys and validates on assignment, so a typo in a preset or a
widget bug is a clear error rather than a silently ignored setting.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .methods import DEFAULT_METHOD, METHODS, MethodParamsUnion, get_method

#: the registered method names (:data:`~napari_selfdenoise.core.methods.METHODS`)
Method = Literal[tuple(METHODS)]  # type: ignore[valid-type]
Precision = Literal["auto", "fp32", "bf16", "fp16"]

#: display name per method, from the registry
METHOD_NAMES: dict[str, str] = {name: m.title for name, m in METHODS.items()}


class StrictModel(BaseModel):
    """Base for all settings: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class NetworkConfig(StrictModel):
    """The denoising network."""

    arch: Literal["unet", "dncnn"] = Field("unet", description="Network family.")
    depth: int = Field(2, ge=1, le=5, description="U-Net levels (number of poolings).")
    base_filters: int = Field(32, ge=4, le=256, description="Filters at the top level.")
    batch_norm: bool = Field(True, description="Batch normalisation after each convolution.")
    n2v2: bool = Field(
        False, description="N2V2 variant: max-blur-pool and no skip connection at the top level."
    )
    dncnn_layers: int = Field(17, ge=3, le=40, description="Convolutions in the DnCNN network.")
    residual: bool = Field(
        True, description="Predict the input plus a correction (U-Net) / minus noise (DnCNN)."
    )


class MaskingConfig(StrictModel):
    """Which pixels are hidden from the network and how they are replaced."""

    masked_fraction: float = Field(
        0.002, gt=0.0, le=0.25,
        description="N2V / N2V2: fraction of pixels masked per patch (stratified sampling; "
        "0.2% as in the paper).",
    )
    neighbourhood: int = Field(
        5, ge=3, le=11, description="N2V / N2V2: side of the window replacements are drawn from."
    )
    replacement: Optional[Literal["random", "median", "interpolate", "zero"]] = Field(
        None,
        description="Replacement of masked pixels; None picks the method's own "
        "(n2v: random neighbour, n2v2: median, n2s / n2same: interpolate).",
    )
    grid: int = Field(4, ge=2, le=8, description="Noise2Self / Noise2Same grid width w.")
    struct_axis: Optional[Literal["x", "y"]] = Field(
        None, description="structN2V (2D): also mask a line along this axis."
    )
    struct_span: int = Field(5, ge=3, le=15, description="structN2V line length (odd).")

    @field_validator("neighbourhood", "struct_span")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError("must be odd")
        return v


class NormalizationConfig(StrictModel):
    """Intensity normalisation, computed once on the training data and stored with the model.

    ``meanstd`` (the default) standardises to zero mean and unit variance; ``percentile``
    maps the ``pmin`` / ``pmax`` percentiles to 0 / 1. Standardised data trains much faster
    at the same learning rate (+0.2 to +1.6 dB after 60 s on FMD confocal images, see
    docs/benchmarks.md section 2), and Noise2Same needs it: its ``lambda_inv * sqrt(invariance)``
    term does not scale like the reconstruction term, so ``lambda_inv = 2`` (the paper's)
    only balances them on data of unit variance.
    """

    kind: Literal["percentile", "meanstd", "none"] = "meanstd"
    pmin: float = Field(1.0, ge=0.0, lt=50.0)
    pmax: float = Field(99.8, gt=50.0, le=100.0)


def default_patch_size(spatial_dims: int) -> tuple[int, ...]:
    """Training patch when none is given: 64 x 64 in 2D, 16 x 64 x 64 in 3D."""
    return (64, 64) if spatial_dims == 2 else (16, 64, 64)


class TrainConfig(StrictModel):
    """Everything that defines a training run (and is stored inside the model file)."""

    method: Method = Field(DEFAULT_METHOD, description="Self-supervised method.")
    axes: Optional[str] = Field(None, description="Axes of the input data; None infers them.")
    patch_size: Optional[tuple[int, ...]] = Field(
        None, description="Spatial patch shape; None gives 64x64 (2D) or 16x64x64 (3D)."
    )
    batch_size: int = Field(16, ge=1, le=1024)
    steps: int = Field(2000, ge=1, description="Step budget.")
    time_budget_s: Optional[float] = Field(
        None, gt=0, description="Time budget in seconds of ``clock`` (None: steps only)."
    )
    clock: Literal["wall", "cpu"] = Field(
        "wall", description="Clock of the time budget: wall-clock seconds, or this "
        "process's CPU seconds (benchmarks and comparisons on a shared machine). The "
        "learning rate's cosine decay follows the budget on this clock.",
    )
    learning_rate: float = Field(4e-4, gt=0, lt=1)
    ema: float = Field(
        0.0, ge=0.0, lt=1.0,
        description="Exponential moving average of the weights (Polyak averaging): decay "
        "per step, 0 = off. Validation, the kept checkpoint, the live preview and the "
        "model file use the averaged weights; the average is the plain mean of the steps "
        "so far until 1 / (1 - ema) steps, then exponential (half-life about "
        "0.69 / (1 - ema) steps: 69 at 0.99). See core.ema.",
    )
    lambda_inv: float = Field(2.0, ge=0, description="Noise2Same invariance weight.")
    val_fraction: float = Field(0.1, ge=0.0, lt=0.5, description="Held out by region.")
    augment: bool = Field(True, description="Random flips and 90-degree rotations in YX.")
    precision: Precision = Field("auto", description="Mixed precision (fp32 master weights).")
    channels_last: Optional[bool] = Field(None, description="None: where it helps.")
    device: str = Field("auto", description="'auto', 'cpu', 'cuda', 'cuda:1', 'mps'.")
    seed: Optional[int] = Field(0, description="Seed; runs are reproducible on CPU.")
    log_every: int = Field(10, ge=1, description="Steps between TrainStep events.")
    val_every: int = Field(50, ge=1, description="Steps between validation passes.")
    j_invariant_inference: bool = Field(
        False, description="Noise2Self: J-invariant (w^2 masked passes) inference by default."
    )
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    masking: MaskingConfig = Field(default_factory=MaskingConfig)
    normalization: NormalizationConfig = Field(default_factory=NormalizationConfig)
    params: Optional[MethodParamsUnion] = Field(  # type: ignore[valid-type]
        None,
        description="The method's own parameters (one model per method, chosen by its "
        "'method' field); None or absent (files written before it existed): the method's "
        "defaults.",
    )

    @field_validator("axes")
    @classmethod
    def _axes(cls, v: Optional[str]) -> Optional[str]:
        if v is None:
            return v
        from .axes import validate_axes

        return validate_axes(v)

    @model_validator(mode="after")
    def _consistent(self) -> "TrainConfig":
        if self.params is None:
            # model files and presets written before ``params`` existed: the method's
            # defaults. Filled after validation, not before: a "before" validator hands
            # strict (JSON) validation Python lists where tuples are expected.
            object.__setattr__(self, "params", get_method(self.method).Params())
        if self.patch_size is not None:
            if len(self.patch_size) not in (2, 3):
                raise ValueError("patch_size must have 2 (YX) or 3 (ZYX) entries")
            if any(p < 8 for p in self.patch_size):
                raise ValueError("every patch dimension must be at least 8")
        if self.params.method != self.method:
            raise ValueError(f"params are for method {self.params.method!r}, "
                             f"not {self.method!r}")
        return self

    def replacement(self) -> str:
        """The effective replacement rule for masked pixels."""
        return get_method(self.method).replacement_of(self)

    def with_method(self, method: str) -> "TrainConfig":
        """A copy for ``method`` (its parameters reset to that method's defaults)."""
        data = self.model_dump()
        data.update(method=method, params=None)
        return TrainConfig.model_validate(data)


# ------------------------------------------------------------------ method defaults
#: Per-method defaults (each method's ``defaults``), applied to the settings a caller did
#: not set explicitly (the generic field defaults above stay what an explicit
#: ``TrainConfig(...)`` holds), chosen for the budgets this plugin is used with (a minute
#: or a few on a CPU) and measured on FMD confocal images at 60 s (docs/benchmarks.md
#: section 2):
#:
#: - 16 base filters: about 3.5x fewer FLOPs per step than 32, so 3x more steps in the
#:   budget, which beat the wider network for every method;
#: - learning rate 2e-3 (the paper's 4e-4 is far from converged after a few hundred steps);
#: - Noise2Same: batch 8, as its two forward passes per step then cost what the other
#:   methods' batch of 16 does;
#: - no residual (input + correction) output: a blind-spot network is trained on masked
#:   inputs, and at inference the skip would pass the unmasked noisy pixel through.
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {name: m.defaults for name, m in METHODS.items()}


def resolve_config(config: TrainConfig) -> TrainConfig:
    """Fill in the method's defaults (:data:`METHOD_DEFAULTS`) for unset settings.

    Settings given explicitly (even to their generic default) are kept. The result has
    every field set, so resolving it again changes nothing.
    """
    data = config.model_dump()
    for key, value in get_method(config.method).defaults.items():
        if isinstance(value, dict):
            given = getattr(config, key).model_fields_set
            data[key].update({k: v for k, v in value.items() if k not in given})
        elif key not in config.model_fields_set:
            data[key] = value
    return TrainConfig.model_validate(data)


def default_config(method: str = DEFAULT_METHOD, **settings: Any) -> TrainConfig:
    """A :class:`TrainConfig` with the defaults of ``method`` and the given settings."""
    return resolve_config(TrainConfig(method=method, **settings))


class PredictConfig(StrictModel):
    """Inference settings."""

    tile_shape: Optional[tuple[int, ...]] = Field(
        None, description="Spatial tile shape; None chooses from the memory budget."
    )
    overlap: Optional[tuple[int, ...]] = Field(
        None, description="Overlap per spatial dim; None uses the receptive-field halo."
    )
    border: Optional[tuple[int, ...]] = Field(
        None, description="Voxels reflected beyond the image per spatial dim (at most the "
        "context); None: half the context, a quarter along an axis the training patches "
        "were shorter than the receptive field."
    )
    batch_size: Optional[int] = Field(None, ge=1, description="Tiles per batch; None: auto.")
    memory_budget_mb: Optional[float] = Field(None, gt=0, description="None: from free memory.")
    tta: bool = Field(False, description="Average the 8 dihedral transforms in YX.")
    j_invariant: Optional[bool] = Field(
        None, description="Masked inference, no output from its own pixel: True: J-invariant "
        "grid passes (complementary masks for ams); False: one plain pass; None follows the "
        "model (its method's predictor)."
    )
    r3: bool = Field(
        False, description="R3 refinement (AP-BSN): after the prediction, r3_passes more "
        "passes on it with a random r3_fraction of pixels set back to the noisy values, "
        "averaged (full resolution, no pixel shuffle). For blind-spot and masked models.")
    r3_passes: int = Field(8, ge=1, le=64, description="R3 passes (8 in AP-BSN).")
    r3_fraction: float = Field(0.16, gt=0.0, lt=1.0,
                               description="R3: fraction of pixels set back to noisy (0.16).")
    pixel_shuffle_infer: Optional[int] = Field(
        None, ge=1, le=8, description="Pixel-shuffle factor at inference for a model "
        "trained with pixel shuffle: predict on its K x K sub-images (1: full resolution; "
        "None: the factor the model was trained with). An error for other models.")
    precision: Precision = "auto"
    channels_last: Optional[bool] = None
    device: str = "auto"
    overwrite: bool = Field(False, description="Replace an existing output path.")
    ome_zarr_version: Literal["0.4", "0.5"] = Field(
        "0.5", description="OME-NGFF version of a .ome.zarr output: 0.5 (zarr v3) or 0.4 "
        "(zarr v2, for older readers).")
    scheduler: Optional[str] = Field(
        None, description="Distributed prediction on the dask.distributed cluster whose "
        "scheduler is at this address (e.g. tcp://host:8786); the input must be a file and "
        "the output a .zarr store that every worker can reach.")
    workers: Optional[int] = Field(
        None, ge=1, le=1024, description="Distributed prediction on this many local worker "
        "processes (a dask LocalCluster started for the run; one per GPU on a GPU machine).")

    @model_validator(mode="after")
    def _one_cluster(self) -> "PredictConfig":
        if self.scheduler is not None and self.workers is not None:
            raise ValueError("give either scheduler (an existing cluster) or workers (a local "
                             "cluster), not both")
        return self

    @property
    def distributed(self) -> bool:
        """Whether the prediction runs on a dask.distributed cluster."""
        return self.scheduler is not None or self.workers is not None

    @field_validator("tile_shape", "overlap", "border")
    @classmethod
    def _sizes(cls, v: Optional[tuple[int, ...]], info: Any) -> Optional[tuple[int, ...]]:
        low = 1 if info.field_name == "tile_shape" else 0
        if v is not None and (not v or min(v) < low):
            raise ValueError(f"{info.field_name} needs one integer >= {low} per spatial dim, "
                             f"got {tuple(v)}")
        return v


class CalibrateConfig(StrictModel):
    """J-invariant calibration of a classical denoiser."""

    denoiser: str = Field("auto", description="Denoiser name, or 'auto' to try them all.")
    values: Optional[list[float]] = Field(None, description="Parameter grid; None: from data.")
    axes: Optional[str] = None
    j_invariant_output: bool = Field(
        True, description="Return the J-invariant denoised image (the output the calibration "
        "loss measures; see docs/calibration.md) instead of the plain denoiser's."
    )
    crop: Optional[int] = Field(
        512, ge=32, description="Calibrate on a central crop of this side (None: whole image)."
    )
    device: str = "auto"


class CompareConfig(StrictModel):
    """Which denoiser for this image: candidates, one total budget (core.compare)."""

    budget_s: float = Field(120.0, gt=0, description="Total budget (s): calibration of the "
                            "filters, training and scoring of every candidate network.")
    clock: Literal["wall", "cpu"] = Field(
        "wall", description="How the budget is counted: wall-clock seconds, or this "
        "process's CPU seconds (robust to other load; use with one thread).")
    methods: list[str] = Field(
        ["n2s"], description="Candidate networks (single-image methods); the default "
        "set is chosen by measurement (docs/benchmarks.md section 8: every extra network "
        "splits the budget, and n2v2 never was the best candidate).")
    filters: bool = Field(True, description="Calibrate every classical filter as candidates.")
    region_fraction: float = Field(
        0.2, gt=0.0, lt=0.5, description="Fraction of Y held out as the scoring region no "
        "candidate trains or calibrates on: up to four thin bands spread over the image "
        "(core.holdout).")
    explore_fraction: float = Field(
        0.5, gt=0.0, le=1.0, description="Share of the networks' budget split equally "
        "between them; the leader by score then trains on with the rest.")
    seed: int = Field(0, description="Seed of every candidate's training.")
    tta: bool = Field(False, description="8-fold test-time averaging of a network pick "
                      "handed out in its plain pass (its estimate is of that output); one "
                      "handed out in a J-invariant form gets none (it was scored without).")
    blend: bool = Field(
        True, description="Also rank a blend of the best network and the best filter, "
        "weighted by Stein's unbiased risk estimate (SURE-LET, core.blend); handed out when "
        "estimated best.")
    device: str = "auto"
