"""The method protocol: what a self-supervised method tells the engine about itself.

A method is one module in this package with one :class:`Method` subclass, registered by
name in :data:`napari_selfdenoise.core.methods.METHODS`. The engine (training, inference,
calibration, CLI, widgets, presets and model files) asks the method instead of comparing
its name. This module imports neither torch nor the rest of ``core``: torch is imported
inside the functions that run a network.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Optional

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ..config import NetworkConfig, TrainConfig
    from ..noise_model import NoiseModel

#: how a trained model is applied: one pass, J-invariant grid passes, or complementary masks
Predictor = Literal["plain", "j_invariant", "complementary"]
#: the J-invariant form a model is scored through (core.scoring): grid-masked passes,
#: its complementary masks, or its blind-spot output as is
ScoringForm = Literal["grid", "complementary", "blind_spot"]


class MethodParams(BaseModel):
    """Base of a method's own parameter model (the discriminated union's members).

    Subclasses add ``method: Literal["<name>"]`` (the discriminator) and their fields,
    each with a description and bounds: the widget and the CLI are generated from them.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    def resolve(self, arrays: Any) -> tuple["MethodParams", list]:
        """These parameters with the choices left to the data (a value ``"auto"``) made
        from the training ``arrays`` (raw, each ``(N, C, *S)``), and ``(text, level)``
        messages reporting them. Training calls it before building the network, so the
        model stores the values chosen. Default: unchanged, nothing to report."""
        return self, []


def field_constraints(info: Any) -> list:
    """A pydantic field's constraint objects (``ge``, ``le``...): its own, and those of an
    ``Annotated`` member of its union (``Union[Annotated[int, Ge(2)], Literal["auto"]]``)."""
    found = list(info.metadata)
    for arg in typing.get_args(info.annotation):
        if typing.get_origin(arg) is typing.Annotated:
            found += list(arg.__metadata__)
    return found


def int_or_words(annotation: Any) -> Optional[list]:
    """The words of an ``int``-or-literal field (``Union[int, Literal["auto"]]``:
    ``["auto"]``), None for any other annotation (the CLI and the widget give such a field
    a number entry that also takes the words)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    ints = [a for a in args if a is int or (typing.get_origin(a) is typing.Annotated
                                           and typing.get_args(a)[0] is int)]
    words = [w for a in args if typing.get_origin(a) is typing.Literal
             for w in typing.get_args(a)]
    return words if ints and words and len(ints) + 1 == len(args) else None


@dataclass(frozen=True)
class StepContext:
    """What a training or validation step knows beyond the batch.

    Attributes
    ----------
    struct_range : tuple of float
        1st / 99th percentile of the normalised training data (structN2V's line values).
    progress : float
        Fraction of the budget spent, in [0, 1] (1 for validation).
    """

    struct_range: tuple[float, float] = (0.0, 1.0)
    progress: float = 1.0


Batch = dict  # name -> tensor, every tensor with the batch on its first axis


class Method:
    """One self-supervised method. Subclass it in its own module and register it.

    Class attributes
    ----------------
    name, title, help, citation : str
        Registry key, display name, one-line help, reference.
    citation_url : str
        A link to the reference (its arXiv page).
    Params : type[MethodParams]
        The method's own parameters (stored in ``TrainConfig.params``).
    defaults : dict
        Defaults for the generic settings this method prefers (applied to settings a
        caller did not set; see :func:`~napari_selfdenoise.core.config.resolve_config`).
    settings : tuple of str
        Shared ``TrainConfig`` settings the method reads (dotted paths), shown with it.
    replacement : str
        Default replacement of masked pixels (``masking.replacement = None``).
    needs_target : bool
        Training needs a second, independent noisy image (or pairs from one stack).
    n2v2_network : bool
        The U-Net is built as the N2V2 variant.
    networks : tuple of str
        The network families it can train (N2V2 is defined by its U-Net variant).
    validation_draw : str
        The random draw each copy of a held-out tile gets once in the fixed validation
        batch (:meth:`validation_note`), e.g. ``"fixed mask"``.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    help: ClassVar[str] = ""
    citation: ClassVar[str] = ""
    #: where the reference can be read (bioimage.io packages cite it with this link)
    citation_url: ClassVar[str] = ""
    Params: ClassVar[type[MethodParams]] = MethodParams
    defaults: ClassVar[dict[str, Any]] = {}
    settings: ClassVar[tuple[str, ...]] = ()
    replacement: ClassVar[str] = "interpolate"
    needs_target: ClassVar[bool] = False
    n2v2_network: ClassVar[bool] = False
    #: network families (``NetworkConfig.arch``) this method can train
    networks: ClassVar[tuple[str, ...]] = ("unet", "dncnn")
    validation_draw: ClassVar[str] = "fixed mask"

    # ------------------------------------------------------------------ network
    def build_network(self, network: "NetworkConfig", spatial_dims: int, n_channels: int,
                      params: Optional[MethodParams] = None) -> "torch.nn.Module":
        """The network this method trains and predicts with.

        Its ``forward`` is the denoiser: ``n_channels`` in and out (a network with another
        head, such as a prior's mean and variance, turns it into the estimate itself, from
        the noisy input it receives). ``params``: the method's parameters (None: defaults).
        """
        from ..models import NETWORKS

        try:
            factory = NETWORKS[network.arch]
        except KeyError:
            raise ValueError(
                f"unknown network {network.arch!r}; choose one of {sorted(NETWORKS)}"
            ) from None
        return factory(network, int(spatial_dims), int(n_channels), self.n2v2_network)

    def prepare_network(self, net: "torch.nn.Module", config: "TrainConfig",
                        noise: Optional["NoiseModel"], offsets: list[float],
                        scales: list[float]) -> None:
        """Set up ``net`` before training from the data's estimated noise model (data
        units; None when it could not be estimated) and the normalisation
        ``(data - offset) / scale``. Most methods ignore it."""

    # ----------------------------------------------------------------- training
    def split_pairs(self, data: Any, target: Any, axes: Optional[str],
                    config: "TrainConfig") -> tuple[Any, Any, Optional[str]]:
        """``(input, target, axes)`` made from ``data`` when no target image is given."""
        raise ValueError(f"{self.title} needs a target image")

    def make_batch(self, x: "torch.Tensor", config: "TrainConfig",
                   generator: Optional["torch.Generator"], ctx: StepContext) -> Batch:
        """The inputs of one step for the patches ``x`` (B, C, *S) (random choices here).

        Called once with a fixed generator on the held-out patches: the validation batch.
        """
        raise NotImplementedError

    def loss(self, net: "torch.nn.Module", batch: Batch, config: "TrainConfig",
             ctx: StepContext) -> "torch.Tensor":
        """The training loss of ``batch`` (a scalar with gradient)."""
        raise NotImplementedError

    def validation_batch(self, x: "torch.Tensor", config: "TrainConfig",
                         generator: Optional["torch.Generator"], ctx: StepContext) -> Batch:
        """The fixed validation batch of the held-out tiles ``x`` (repeated when
        :meth:`validation_draws`), made once with a fixed ``generator``. Default: what
        :meth:`make_batch` makes of them."""
        return self.make_batch(x, config, generator, ctx)

    def validation_draws(self, config: "TrainConfig") -> bool:
        """Whether :meth:`make_batch` draws anything at random (masks, a sub-sampling, a
        swap). Only then is each held-out tile repeated in the fixed validation batch,
        each copy with its own draw; a deterministic batch (``bsn`` without pixel
        shuffle) holds each tile once: copies would only repeat the same loss."""
        return True

    def validation_note(self, config: "TrainConfig", n_items: int, n_tiles: int) -> str:
        """What the fixed validation batch holds, for training's "validation: N tiles of
        a held-out band of each image, ..." message: ``n_items`` items of
        :meth:`make_batch` made from ``n_tiles`` held-out tiles, each tile repeated with
        its own :attr:`validation_draw` per copy (pixel shuffle: as sub-images)."""
        factor = config.params.factors()[0] if hasattr(config.params, "factors") else 1
        if factor > 1:
            return (f"as {n_items} pixel-shuffled sub-images (factor {factor}), each with "
                    f"its {self.validation_draw}")
        return f"{n_items // n_tiles} {self.validation_draw}(s) each"

    # ---------------------------------------------------------------- inference
    def predictor(self, config: "TrainConfig", j_invariant: Optional[bool] = None) -> Predictor:
        """How a model trained with ``config`` is applied.

        ``j_invariant`` (a prediction setting) forces J-invariant grid passes (True) or a
        single pass (False); None follows the model.
        """
        return "j_invariant" if j_invariant else "plain"

    def scoring_form(self, config: "TrainConfig") -> ScoringForm:
        """The J-invariant form :mod:`~napari_selfdenoise.core.scoring` scores the model
        through (grid-masked passes unless the method is J-invariant by construction)."""
        return "grid"

    def n_subsets(self, config: "TrainConfig", spatial_dims: int) -> int:
        """Masked passes of the J-invariant / complementary predictor."""
        return int(config.masking.grid) ** spatial_dims

    def fill(self, config: "TrainConfig") -> str:
        """What hidden pixels become at inference: ``"interpolate"`` or ``"zero"``."""
        return "zero" if self.replacement_of(config) == "zero" else "interpolate"

    def replacement_of(self, config: "TrainConfig") -> str:
        """The effective replacement rule for masked pixels."""
        return config.masking.replacement or self.replacement
