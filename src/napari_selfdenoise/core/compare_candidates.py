"""The candidates of a comparison (:mod:`~napari_selfdenoise.core.compare`): the budget's
clock, the classical filters calibrated on the training part, and the networks trained on
it and scored on the held-out bands through their J-invariant form (with what each hands
out and its divergence, for Stein's estimate)."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Generator, Optional

import numpy as np

from .config import CalibrateConfig, CompareConfig, default_config
from .events import CompareTraining
from .holdout import Holdout
from .methods import get_method
from .scoring import invariant_filter, invariant_network, scored_as
from .validation import UserError


class Clock:
    """The budget's clock: wall-clock or this process's CPU time."""

    def __init__(self, config: CompareConfig) -> None:
        self.now: Callable[[], float] = (time.process_time if config.clock == "cpu"
                                         else time.perf_counter)
        self.t0, self.budget = self.now(), float(config.budget_s)

    def used(self) -> float:
        return self.now() - self.t0

    def left(self) -> float:
        return max(self.budget - self.used(), 0.0)


def axes_of(arr: np.ndarray, sp: str) -> tuple[Any, str]:
    """``(image, axes)`` of an ``(N, *S)`` array for the engines: N = 1 dropped, else T."""
    return (arr[0], sp) if arr.shape[0] == 1 else (arr, "T" + sp)


def calibrate_filters(arr: np.ndarray, sp: str, hold: Holdout, clock: Clock,
                      config: CompareConfig, found: dict) -> Generator[Any, None, None]:
    """Every classical filter calibrated (Noise2Self) on the training part, its calibrated
    J-invariant form on the held-out crops recorded in ``found``."""
    from .calibration import calibrate

    start = clock.used()
    img, ax = axes_of(hold.joined(arr), sp)
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
        found[name] = {"name": name, "kind": "filter",
                       "detail": f"{curve.parameter} {curve.best_value:.4g}",
                       "scored_as": "calibrated J-invariant form", "same": True,
                       "out": out, "score": None, "value": curve.best_value,
                       "seconds": per + clock.used() - t,
                       "curve": tuple(zip(curve.values, curve.losses))}


def train_network(method: str, arr: np.ndarray, sp: str, hold: Holdout, seconds: float,
                  clock: Clock, config: CompareConfig, init: Any = None,
                  stop: Optional[threading.Event] = None) -> Generator[Any, None, Any]:
    """Train ``method`` on the training pieces for ``seconds`` of the budget's clock."""
    from .training import train

    pieces = [axes_of(np.ascontiguousarray(p), sp) for p in hold.pieces(arr)]
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


def score_network(name: str, bundle: Any, hold: Holdout, arr: np.ndarray, found: dict,
                  seconds: float, sp: str, config: CompareConfig) -> None:
    """Record ``bundle`` in ``found``: its J-invariant form on the held-out crops (what it
    is scored by), what it hands out and that output's divergence (Stein's estimate); a
    network trained on (same ``name``) adds its steps, seconds and curve to the earlier."""
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
    found[name] = {"name": name, "kind": "network", "detail": f"{steps} steps",
                   "scored_as": text,
                   "same": same, "invertible": invertible, "out": out, "score": None,
                   "bundle": bundle,
                   "delivered": delivered, "div": div,
                   "steps": steps, "seconds": seconds + (prev["seconds"] if prev else 0.0),
                   "curve": (prev["curve"] if prev else ()) + hist}


__all__ = ["Clock", "axes_of", "calibrate_filters", "loss_curve", "score_network",
           "train_network"]
