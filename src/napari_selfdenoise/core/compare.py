"""Which denoiser for this image? Rank networks and classical filters on the user's data.

:func:`compare` holds out ``region_fraction`` of the image's rows as thin bands spread
over it (:mod:`~napari_selfdenoise.core.holdout`), calibrates every classical filter on the
rest (Noise2Self calibration, :mod:`~napari_selfdenoise.core.calibration`) and trains the
candidate networks on the rest (:mod:`~napari_selfdenoise.core.compare_candidates`)
within one total budget, scores every candidate on the held-out bands through its
J-invariant form with the same masks (:mod:`~napari_selfdenoise.core.scoring`), estimates
the error of the output each candidate *delivers* (the same estimate for a J-invariant
output; Stein's unbiased risk estimate for a network's plain pass or posterior,
:mod:`~napari_selfdenoise.core.sure`), streams the ranking by that estimate
(:class:`~napari_selfdenoise.core.events.CompareRanking`) and returns the winner's output
on the whole image. When a filter's output is estimated best it is the pick and its
(J-invariant) output is returned: a network estimated worse than a filter is never handed
out.

Budget: the filters' calibration, the networks' training and every scoring pass count
against ``budget_s`` (wall-clock or process CPU seconds, ``clock``); the networks split
``explore_fraction`` of what the filters leave equally, then the leader by score trains on
(from its weights) with the rest. Producing the pick's output on the whole image comes
after the budget, as prediction comes after training.
"""

from __future__ import annotations

import threading
from typing import Any, Generator, Optional

import numpy as np

from .axes import spatial_axes, to_canonical
from .compare_candidates import Clock, calibrate_filters, score_network, train_network
from .config import CompareConfig, PredictConfig
from .events import NOISE_CORRELATION, CompareRanking, Message
from .holdout import CONTEXT, HoldoutError, plan
from .methods import get_method
from .noise_level import noise_correlation, noise_warning
from .preload import preload_optimiser
from .ranking import CandidateScore, CompareResult
from .scoring import Quality, data_range, estimate_quality, score_of
from .validation import UserError, check_array, resolve_axes


def _prepare(image: Any, axes: Optional[str], config: CompareConfig) -> tuple:
    """``(arr (N, *S) float32, axes, spatial letters, the scoring bands)``."""
    check_array(image, "the image", purpose="compare")
    axes = resolve_axes(np.shape(image), axes)
    canon = np.asarray(to_canonical(np.asarray(image), axes), dtype=np.float32)
    if canon.shape[1] != 1:
        raise UserError(f"compare needs a one-channel image; axes {axes!r} have "
                        f"{canon.shape[1]} channels: compare one channel at a time")
    if not np.isfinite(canon).all():
        raise UserError("the image contains NaN or infinite values; replace them first")
    arr = canon[:, 0]
    try:
        hold = plan(arr.shape[-2], config.region_fraction)
    except HoldoutError as exc:
        raise UserError(str(exc)) from None
    for m in config.methods:
        if get_method(m).needs_target:
            raise UserError(f"{m} needs a second acquisition; compare single-image methods")
    return arr, axes, spatial_axes(axes), hold


INVARIANT_NOTE = ("; handed out in this form (its plain pass is estimated worse, and Stein's "
                  "estimate of a plain pass can be biased low)")


def _reference(found: dict) -> np.ndarray:
    """The best-scoring J-invariant output: the noise estimate's reference."""
    return found[min(found, key=lambda k: found[k]["score"])]["out"]


def _form(y: np.ndarray, c: dict, ref: np.ndarray, peak: float,
          q: Optional[Quality] = None) -> tuple[Quality, Optional[Quality]]:
    """``(the estimate of what candidate c hands out, the Stein estimate of a plain pass
    it does not hand out)``.

    A network whose plain pass is not its J-invariant form hands out whichever of the two
    is estimated better (when its J-invariant form is one :func:`deliver` can produce on
    the whole image): Stein's estimate of the plain pass is biased under strongly
    non-Gaussian noise (docs/compare.md, "Known limits"), the J-invariant form's is not.
    When the J-invariant form is handed out, the first element *is* ``q``.
    """
    q = q if q is not None else estimate_quality(y, c["out"], ref, peak)
    if c["same"]:
        return q, None
    d = estimate_quality(y, c["delivered"], ref, peak, divergence=c["div"])
    if c.get("invertible") and q.mse < d.mse:
        return q, d
    return d, None


def _delivered(y: np.ndarray, c: dict, ref: np.ndarray, peak: float) -> Quality:
    """The estimated quality of what candidate ``c`` hands out."""
    return _form(y, c, ref, peak)[0]


def _rank(y: np.ndarray, found: dict, peak: float
          ) -> tuple[list[CandidateScore], float, Optional[str]]:
    """Every candidate's quality against the best one's output as the noise reference,
    best estimated delivered output first (``delivered_is_scored``: it hands out its
    J-invariant form, :func:`_form`), the noise variance and the correlation warning."""
    ref = _reference(found)
    rows = []
    for name, c in found.items():
        q = estimate_quality(y, c["out"], ref, peak)
        d, plain = _form(y, c, ref, peak, q)
        text = c["scored_as"] + (INVARIANT_NOTE if plain is not None else "")
        rows.append(CandidateScore(name, c["kind"], c["detail"], text,
                                   c["same"] or plain is not None, q, c["seconds"],
                                   c["curve"], d, plain))
    rows.sort(key=lambda r: (r.best.mse, r.quality.score))
    return rows, rows[0].quality.noise_variance, noise_warning(y)


class _Run:
    """One comparison's state: the image and its scoring bands, the budget's clock, the
    candidates found so far (name -> record) and the stop event."""

    def __init__(self, image: Any, axes: Optional[str], config: CompareConfig,
                 stop: Optional[threading.Event]) -> None:
        preload_optimiser().join()  # torch's one-time import is not the budget's (preload)
        self.config, self.stop, self.clock = config, stop, Clock(config)
        self.arr, self.axes, self.sp, self.hold = _prepare(image, axes, config)
        self.region = self.hold.region(self.arr)
        self.peak = data_range(self.arr)
        self.found: dict[str, dict] = {}

    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def ranking(self) -> CompareRanking:
        """Every candidate scored and ranked on the bands (by estimated delivered MSE)."""
        for c in self.found.values():
            c["score"] = score_of(self.region, c["out"])
        rows, var, warning = _rank(self.region, self.found, self.peak)
        return CompareRanking(tuple(rows), rows[0].name, var, self.clock.used(),
                              self.clock.budget, warning)

    def train(self, method: str, seconds: float,
              init: Any = None) -> Generator[Any, None, None]:
        """Train ``method`` for ``seconds`` of the budget (on from ``init``) and score it."""
        t = self.clock.used()
        bundle = yield from train_network(method, self.arr, self.sp, self.hold, seconds, self.clock,
                                   self.config, init=init, stop=self.stop)
        score_network(method, bundle, self.hold, self.arr, self.found,
                       self.clock.used() - t, self.sp, self.config)

    def delivered_mse(self, candidate: dict) -> float:
        """The estimated MSE of what ``candidate`` hands out (the noise reference: the
        best candidate's output)."""
        return _delivered(self.region, candidate, _reference(self.found), self.peak).mse


def _explore(run: _Run, methods: list[str], explore: float) -> Generator[Any, None, None]:
    """The filters, then each network with an equal share of ``explore`` of what is left."""
    if run.config.filters:
        yield from calibrate_filters(run.arr, run.sp, run.hold, run.clock, run.config,
                                     run.found)
        yield run.ranking()
    pool = run.clock.left() * explore
    for i, m in enumerate(methods):
        if run.stopped():
            break
        share = min(pool / (len(methods) - i), run.clock.left())
        t = run.clock.used()
        yield from run.train(m, max(share - 2.0, 1.0))
        pool -= run.clock.used() - t
        yield run.ranking()


def _train_lead(run: _Run, methods: list[str]) -> Generator[Any, None, None]:
    """The network estimated best trains on, from its weights, with the rest of the
    budget; its earlier weights are kept when that does not improve its estimate."""
    nets = [k for k in methods if k in run.found]
    if not nets or run.clock.left() <= 5.0 or run.stopped():
        return
    lead = min(nets, key=lambda k: run.delivered_mse(run.found[k]))
    before = dict(run.found[lead])
    yield from run.train(lead, run.clock.left() - 2.0, init=before["bundle"])
    run.found[lead]["score"] = score_of(run.region, run.found[lead]["out"])
    if run.delivered_mse(run.found[lead]) > run.delivered_mse(before):
        run.found[lead] = before  # continuing did not help: keep the earlier weights
        yield Message(f"{lead}: training on did not improve its score; kept the earlier "
                      "weights")
    yield run.ranking()


def _final(run: _Run) -> Generator[Any, None, tuple]:
    """The last ranking, with the blend of the best network and filter when asked:
    ``(ranking, blend or None)``; announces the pick and any correlated-noise warning."""
    final = run.ranking()
    blend = _blend(run.region, run.found, list(final.rows), run.peak) \
        if run.config.blend else None
    if blend is not None:
        rows = sorted(list(final.rows) + [blend[1]],
                      key=lambda r: (r.best.mse, r.quality.score))
        final = CompareRanking(tuple(rows), rows[0].name, final.noise_variance,
                               run.clock.used(), run.clock.budget, final.warning)
        yield final
    pick = final.rows[0]
    yield Message(f"pick: {pick.name} ({pick.kind}, {pick.best.describe()})"
                  + (" - a classical filter is estimated best, so it is returned"
                     if pick.kind == "filter" else "")
                  + (" - in its J-invariant form: its plain pass is estimated worse"
                     if pick.plain is not None else ""))
    if final.warning:
        yield Message(final.warning, "warning", topic=NOISE_CORRELATION)
    return final, blend


def compare(image: Any, config: Optional[CompareConfig] = None, *, axes: Optional[str] = None,
            stop: Optional[threading.Event] = None) -> Generator[Any, None, CompareResult]:
    """Rank candidate networks and classical filters on ``image``; return the winner.

    Parameters
    ----------
    image : array-like
        One-channel 2D or 3D image (with an optional T / sample axis).
    config : CompareConfig, optional
        Candidates, total budget and its clock, scoring region.
    axes : str, optional
        Axes of ``image`` (None: inferred).
    stop : threading.Event, optional
        Ends the current candidate early; the ranking so far decides.

    Yields
    ------
    CalibrationStep, CompareTraining, CompareRanking, Message

    Returns
    -------
    CompareResult
    """
    config = config if config is not None else CompareConfig()
    run = _Run(image, axes, config, stop)
    yield Message(f"scoring region: {len(run.hold.bands)} band(s), {run.hold.describe()} "
                  f"(held out from every candidate); budget {config.budget_s:g} "
                  f"{config.clock} s")
    methods = list(dict.fromkeys(config.methods))
    explore = config.explore_fraction if len(methods) > 1 else 1.0
    yield from _explore(run, methods, explore)
    if explore < 1.0:
        yield from _train_lead(run, methods)
    if not run.found:
        raise UserError("nothing was compared (stopped before the first candidate)")
    final, blend = yield from _final(run)
    rows, found, pick = list(final.rows), run.found, final.rows[0]
    mix = blend[0] if blend is not None and pick.kind == "blend" else None
    invariant = {r.name: r.delivered_is_scored for r in rows}
    outs = []
    for name in (mix.parts if mix is not None else (pick.name,)):
        outs.append((yield from deliver(dict(found[name], invariant=invariant[name]), image,
                                        run.axes, config)))
    out = mix.apply(outs) if mix is not None else outs[0]
    parts = mix.parts if mix is not None else (pick.name,)
    network = next((found[p]["bundle"] for p in parts if found[p]["kind"] == "network"), None)
    region_outs = {k: c["out"] for k, c in found.items()}
    if blend is not None:
        region_outs["blend"] = blend[2]
    return CompareResult(
        pick.name, pick.kind, out, rows, final.noise_variance,
        noise_correlation(run.region), final.warning,
        network, {k: c.get("bundle", (k, c.get("value"))) for k, c in found.items()},
        region_outs, run.hold.bands, run.clock.used(),
        blend[0] if blend is not None else None, run.hold)


def _blend(y: np.ndarray, found: dict, rows: list, peak: float) -> Optional[tuple]:
    """The Stein-optimal blend of the best network and the best filter
    (:mod:`~napari_selfdenoise.core.blend`), each in the form it hands out (:func:`_form`):
    ``(Blend, its row, its output on y)``, or None without both kinds."""
    from .blend import fit_blend

    net = next((r.name for r in rows if r.kind == "network"), None)
    filt = next((r.name for r in rows if r.kind == "filter"), None)
    if net is None or filt is None:
        return None
    inv = {r.name: r.delivered_is_scored for r in rows}
    outs = {k: found[k]["out"] if inv[k] else found[k]["delivered"] for k in (net, filt)}
    divs = {k: None if inv[k] else found[k]["div"] for k in (net, filt)}
    ref = _reference(found)
    mix = fit_blend(y, (net, filt), list(outs.values()), list(divs.values()), ref)
    if not mix.parts:  # every weight negative: nothing to blend
        return None
    out = mix.apply([outs[k] for k in mix.parts])
    q = estimate_quality(y, out, ref, peak, divergence=mix.divergence([divs[k] for k in mix.parts]))
    row = CandidateScore("blend", "blend", mix.describe(), "Stein-weighted blend (SURE-LET)",
                         False, q, 0.0, (), q)
    return mix, row, out


def deliver(candidate: dict, image: Any, axes: str,
            config: CompareConfig) -> Generator[Any, None, Any]:
    """A candidate's output on the whole ``image``, in the form it was scored: a network's
    own predictor (its plain pass for masking methods, with ``config.tta``, as Stein's
    estimate saw it), or without TTA when that output was scored as it is (a J-invariant
    predictor such as ``ams``'s masks, ``candidate["same"]``) or the ranking chose its
    J-invariant form (``candidate["invariant"]``, :func:`_form`); a filter's calibrated
    J-invariant form."""
    if candidate["kind"] == "network":
        from .inference import predict

        same = bool(candidate.get("same", False))
        inv = bool(candidate.get("invariant")) and not same
        cfg = (PredictConfig(tta=False, j_invariant=True, device=config.device) if inv else
               PredictConfig(tta=config.tta and not same, device=config.device))
        return (yield from predict(candidate["bundle"], image, axes=axes, config=cfg))
    from .calibration import denoise_image

    return (yield from denoise_image(image, candidate["name"], candidate["value"], axes=axes,
                                     j_invariant=True, device=config.device))


__all__ = ["CONTEXT", "CandidateScore", "CompareResult", "compare", "deliver"]
