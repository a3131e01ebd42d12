"""The records of a comparison (:mod:`~napari_selfdenoise.core.compare`): one row per
candidate, and the result with its report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from .scoring import Quality

@dataclass(frozen=True)
class CandidateScore:
    """One candidate in the ranking.

    Attributes
    ----------
    name : str
        ``"n2s"``, ``"gaussian"``... (a network's method, a filter's registry name).
    kind : str
        ``"network"``, ``"filter"`` or ``"blend"`` (:mod:`~napari_selfdenoise.core.blend`).
    detail : str
        What it is: ``"sigma 1.64"``, ``"1234 steps"``.
    scored_as : str
        Its J-invariant form; ``delivered_is_scored`` is False when the output handed
        out (a network's plain pass) is not that form.
    quality : Quality
        Score of the J-invariant form, its estimated MSE and PSNR with their range.
    delivered : Quality
        The estimated MSE and PSNR of the output handed out (``quality`` when that is the
        J-invariant form; else with Stein's divergence correction): the ranking's key.
    seconds : float
        Budget seconds it used (calibration or training and scoring).
    curve : tuple
        ``(x, y)`` pairs: a network's (step, validation loss), a filter's (parameter, loss).
    plain : Quality or None
        Stein's estimate of a network's plain pass when it is *not* handed out: its
        J-invariant form was estimated better and is handed out instead
        (``delivered_is_scored`` True, ``delivered is quality``).
    """

    name: str
    kind: str
    detail: str
    scored_as: str
    delivered_is_scored: bool
    quality: Quality
    seconds: float
    curve: tuple = ()
    delivered: Optional[Quality] = None
    plain: Optional[Quality] = None

    def to_dict(self) -> dict:
        """JSON-safe record (the report and provenance)."""
        return {"name": self.name, "kind": self.kind, "detail": self.detail,
                "scored_as": self.scored_as, "delivered_is_scored": self.delivered_is_scored,
                "score": self.quality.score, "estimated_psnr": self.quality.psnr,
                "estimated_psnr_range": [self.quality.psnr_low, self.quality.psnr_high],
                "estimated_mse": self.quality.mse, "estimated_mse_err": self.quality.mse_err,
                "delivered_estimated_psnr": self.best.psnr,
                "delivered_estimated_psnr_range": [self.best.psnr_low, self.best.psnr_high],
                "delivered_estimated_mse": self.best.mse, "seconds": self.seconds,
                "plain_pass_estimated_psnr": (self.plain.psnr if self.plain is not None
                                              else None)}

    @property
    def best(self) -> Quality:
        """The estimate of the delivered output (the ranking's key)."""
        return self.delivered if self.delivered is not None else self.quality


@dataclass
class CompareResult:
    """The outcome of :func:`compare`.

    ``pick`` is the best candidate's name and ``image`` its output on the whole image (the
    input's axes and shape); ``bundle`` the picked model (None for a filter; the blend's
    network for the blend, whose weights are ``blend``);
    ``candidates`` holds every candidate's model or ``(filter, value)``; ``region_outputs``
    every candidate's J-invariant output on the scoring bands, stacked as
    ``holdout.region`` stacks the canonical ``(N, *S)`` image's bands
    (:class:`~napari_selfdenoise.core.holdout.Holdout`); ``region_rows`` the bands'
    ``(start, stop)`` rows.
    """

    pick: str
    kind: str
    image: Any
    ranking: list[CandidateScore]
    noise_variance: float
    noise_correlation: float
    warning: Optional[str]
    bundle: Any = None
    candidates: dict = field(default_factory=dict)
    region_outputs: dict = field(default_factory=dict)
    region_rows: tuple = ()
    elapsed_s: float = 0.0
    blend: Any = None  # the fitted core.blend.Blend (handed out when the pick is "blend")
    holdout: Any = None  # the core.holdout.Holdout the candidates were scored on

    def report(self) -> dict:
        """The comparison as a JSON-safe dict (CLI ``--report``, provenance)."""
        best_filter = next((r for r in self.ranking if r.kind == "filter"), None)
        text = {"filter": f"a classical filter ({self.pick}) is estimated best: it is the pick",
                "network": f"network {self.pick} is estimated best",
                "blend": "a blend of the best network and the best filter is estimated "
                         "best"}[self.kind]
        handed_out = (self.blend.parts if self.kind == "blend" and self.blend is not None
                      else (self.pick,))
        invariant = [r.name for r in self.ranking if r.plain is not None and r.name in handed_out]
        if invariant:  # compare._form: its plain pass was estimated worse
            text += f" ({', '.join(invariant)} handed out in its J-invariant form)"
        return {"pick": self.pick, "pick_kind": self.kind, "summary": text,
                "j_invariant_networks": invariant,
                "candidates": [r.to_dict() for r in self.ranking],
                "best_filter": best_filter.name if best_filter else None,
                "noise_variance": self.noise_variance,
                "noise_correlation": self.noise_correlation, "warning": self.warning,
                "scoring_region_rows": [list(b) for b in self.region_rows],
                "blend": self.blend.to_dict() if self.blend is not None else None,
                "elapsed_s": self.elapsed_s,
                "note": "score: J-invariant self-supervised loss on held-out bands "
                        "with one fixed set of masks; estimated PSNR = score minus the "
                        "estimated noise variance against the unknown clean image; "
                        "delivered estimated PSNR: the same for the output handed out "
                        "(Stein's unbiased risk estimate where that output is not "
                        "J-invariant); the ranking follows it"}



__all__ = ["CandidateScore", "CompareResult"]
