"""Which denoiser for this image? Rank networks and classical filters on the user's data.

:func:`compare` holds out ``region_fraction`` of the image's rows as thin bands spread
over it (:mod:`~napari_selfdenoise.core.holdout`), calibrates every classical filter on the rest (Noise2Self calibration,
:mod:`~napari_selfdenoise.core.calibration`) and trains the candidate networks on the rest
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
import time
from typing import Any, Callable, Generator, Optional

import numpy as np

from .axes import spatial_axes, to_canonical
from .config import CalibrateConfig, CompareConfig, PredictConfig, default_config
from .events import CompareRanking, CompareTraining, Message
from .holdout import CONTEXT, Holdout, HoldoutError, plan
from .methods import get_method
from .ranking import CandidateScore, CompareResult
from .noise_level import noise_correlation, noise_warning
from .scoring import (
    Quality, data_range, estimate_quality, invariant_filter, invariant_network, score_of,
    scored_as,
)
from .validation import UserError, check_array, resolve_axes

class _Clock:
    """The budget's clock: wall-clock or this process's CPU time."""

    def __init__(self, config: CompareConfig) -> None:
        self.now: Callable[[], float] = (time.process_time if config.clock == "cpu"
                                         else time.perf_counter)
        self.t0, self.budget = self.now(), float(config.budget_s)

    def used(self) -> float:
        return self.now() - self.t0

    def left(self) -> float:
        return max(self.budget - self.used(), 0.0)


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


def _axes_of(arr: np.ndarray, sp: str) -> tuple[Any, str]:
    return (arr[0], sp) if arr.shape[0] == 1 else (arr, "T" + sp)


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


def _filters(arr: np.ndarray, sp: str, hold: Holdout, clock: _Clock,
             config: CompareConfig, found: dict) -> Generator[Any, None, None]:
    from .calibration import calibrate

    start = clock.used()
    img, ax = _axes_of(hold.joined(arr), sp)
    try:
        res = yield from calibrate(np.ascontiguousarray(img), CalibrateConfig(
            denoiser="auto", j_invariant_output=True, device=config.device), axes=ax)
    except ValueError as exc:  # e.g. too few planes for the 3D filters
        raise UserError(f"the classical filters cannot be calibrated here: {exc}; compare "
                        "the networks alone (--no-filters, or untick the widget's filters "
                        "box)") from None
    per = (clock.used() - start) / max(len(res.curves), 1)
    crops = hold.crops(arr)
    for name, curve in res.curves.items():
        t = clock.used()
        out = hold.strip(invariant_filter(name, curve.best_value, crops))
        found[name] = {"name": name, "kind": "filter", "detail": f"{curve.parameter} {curve.best_value:.4g}",
                       "scored_as": "calibrated J-invariant form", "same": True,
                       "out": out, "score": None, "value": curve.best_value,
                       "seconds": per + clock.used() - t,
                       "curve": tuple(zip(curve.values, curve.losses))}


def _train(method: str, arr: np.ndarray, sp: str, hold: Holdout, seconds: float,
           clock: _Clock, config: CompareConfig, init: Any = None,
           stop: Optional[threading.Event] = None) -> Generator[Any, None, Any]:
    """Train ``method`` on the training pieces for ``seconds`` of the budget's clock."""
    from .training import train

    pieces = [_axes_of(np.ascontiguousarray(p), sp) for p in hold.pieces(arr)]
    ax = pieces[0][1]
    # the run's own time budget on the comparison's clock, so that its learning rate
    # decays over its share (a stop event alone would keep the rate at its peak)
    cfg = default_config(method, steps=10**9, seed=config.seed, log_every=5,
                         device=config.device, time_budget_s=max(seconds, 0.1),
                         clock=config.clock)
    halt = threading.Event()
    end = clock.used() + seconds

    def watch(_: Any) -> None:
        if clock.used() >= end or (stop is not None and stop.is_set()):
            halt.set()

    gen = train([p for p, _ in pieces], cfg, axes=ax, stop=halt, init=init)
    bundle = None
    while True:
        try:
            ev = next(gen)
        except StopIteration as fin:
            bundle = fin.value
            break
        watch(ev)
        yield CompareTraining(method, ev)
    return bundle


def loss_curve(history: list[dict]) -> tuple:
    """``(step, loss)`` of a training history, one kind per curve: the validation loss;
    the training loss where the pieces were too small to hold out a validation band (a
    512-row image's pieces are under two patches)."""
    key = "val_loss" if any(h.get("val_loss") is not None for h in history) else "loss"
    return tuple((h["step"], h[key]) for h in history if h.get(key) is not None)


def _score_network(name: str, bundle: Any, hold: Holdout, arr: np.ndarray, found: dict,
                   seconds: float, sp: str, config: CompareConfig) -> None:
    from .sure import network_delivered

    text, same = scored_as(bundle)
    # a grid-masked J-invariant form is what predict(j_invariant=True) runs: the network
    # can hand it out instead of its plain pass (_form)
    invertible = get_method(bundle.method).scoring_form(bundle.config) == "grid"
    device, crops = config.device, hold.crops(arr)
    out = hold.strip(invariant_network(bundle, crops, "cpu" if device == "auto" else device))
    delivered, div = out, None
    if not same:  # what it hands out, and the divergence its estimate needs
        full, dfull = network_delivered(bundle, crops, sp, tta=config.tta, device=device)
        delivered, div = hold.strip(full), hold.strip(dfull)
    hist = loss_curve(bundle.history)
    prev = found.get(name)
    steps = bundle.info.get("steps", 0) + (prev["steps"] if prev else 0)
    found[name] = {"name": name, "kind": "network", "detail": f"{steps} steps", "scored_as": text,
                   "same": same, "invertible": invertible, "out": out, "score": None,
                   "bundle": bundle,
                   "delivered": delivered, "div": div,
                   "steps": steps, "seconds": seconds + (prev["seconds"] if prev else 0.0),
                   "curve": (prev["curve"] if prev else ()) + hist}


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
    clock = _Clock(config)
    arr, axes, sp, hold = _prepare(image, axes, config)
    region = hold.region(arr)
    peak = data_range(arr)
    found: dict[str, dict] = {}
    yield Message(f"scoring region: {len(hold.bands)} band(s), {hold.describe()} (held out "
                  f"from every candidate); budget {config.budget_s:g} {config.clock} s")

    def ranking() -> CompareRanking:
        for c in found.values():
            c["score"] = score_of(region, c["out"])
        rows, var, warning = _rank(region, found, peak)
        return CompareRanking(tuple(rows), rows[0].name, var, clock.used(), clock.budget,
                              warning)

    if config.filters:
        yield from _filters(arr, sp, hold, clock, config, found)
        yield ranking()
    methods = list(dict.fromkeys(config.methods))
    explore = config.explore_fraction if len(methods) > 1 else 1.0
    pool = clock.left() * explore
    for i, m in enumerate(methods):
        if stop is not None and stop.is_set():
            break
        share = min(pool / (len(methods) - i), clock.left())
        t = clock.used()
        bundle = yield from _train(m, arr, sp, hold, max(share - 2.0, 1.0), clock, config,
                                   stop=stop)
        _score_network(m, bundle, hold, arr, found, clock.used() - t, sp, config)
        pool -= clock.used() - t
        yield ranking()
    nets = [k for k in methods if k in found]
    if nets and explore < 1.0 and clock.left() > 5.0 and not (stop and stop.is_set()):
        ref = _reference(found)
        lead = min(nets, key=lambda k: _delivered(region, found[k], ref, peak).mse)
        before = dict(found[lead])
        t = clock.used()
        bundle = yield from _train(lead, arr, sp, hold, clock.left() - 2.0, clock, config,
                                   init=before["bundle"], stop=stop)
        _score_network(lead, bundle, hold, arr, found, clock.used() - t, sp, config)
        found[lead]["score"] = score_of(region, found[lead]["out"])
        ref = _reference(found)
        if (_delivered(region, found[lead], ref, peak).mse
                > _delivered(region, before, ref, peak).mse):
            found[lead] = before  # continuing did not help: keep the earlier weights
            yield Message(f"{lead}: training on did not improve its score; kept the earlier "
                          "weights")
        yield ranking()
    if not found:
        raise UserError("nothing was compared (stopped before the first candidate)")
    final = ranking()
    rows = list(final.rows)
    blend = _blend(region, found, rows, peak) if config.blend else None
    if blend is not None:
        rows = sorted(rows + [blend[1]], key=lambda r: (r.best.mse, r.quality.score))
        final = CompareRanking(tuple(rows), rows[0].name, final.noise_variance,
                               clock.used(), clock.budget, final.warning)
        yield final
    pick = rows[0]
    text = (f"pick: {pick.name} ({pick.kind}, {pick.best.describe()})"
            + (" - a classical filter is estimated best, so it is returned"
               if pick.kind == "filter" else "")
            + (" - in its J-invariant form: its plain pass is estimated worse"
               if pick.plain is not None else ""))
    yield Message(text)
    if final.warning:
        yield Message(final.warning, "warning")
    mix = blend[0] if blend is not None and pick.kind == "blend" else None
    parts = mix.parts if mix is not None else (pick.name,)
    outs = []
    invariant = {r.name: r.delivered_is_scored for r in rows}
    for name in parts:
        outs.append((yield from deliver(dict(found[name], invariant=invariant[name]), image,
                                        axes, config)))
    out = mix.apply(outs) if mix is not None else outs[0]
    network = next((found[p]["bundle"] for p in parts if found[p]["kind"] == "network"), None)
    region_outs = {k: c["out"] for k, c in found.items()}
    if blend is not None:
        region_outs["blend"] = blend[2]
    return CompareResult(
        pick.name, pick.kind, out, rows, final.noise_variance,
        noise_correlation(region), final.warning,
        network, {k: c.get("bundle", (k, c.get("value"))) for k, c in found.items()},
        region_outs, hold.bands, clock.used(),
        blend[0] if blend is not None else None, hold)


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
