"""The parts of a training run: the step loop, checkpointing, logging and live preview.

:func:`~napari_selfdenoise.core.training.train` prepares the data and the network
(:class:`Run`) and drives :func:`run_loop`, which calls the method's step
(:meth:`~napari_selfdenoise.core.methods.base.Method.make_batch` and ``loss``) and hands
the bookkeeping to :class:`Checkpoint`, :class:`Log` and :class:`Preview`.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Generator, Optional, Sequence

import numpy as np
import torch

from .axes import AxesError, from_canonical, to_canonical
from .bundle import ModelBundle
from .config import TrainConfig
from .device import autocast
from .ema import WeightAverage
from .events import Message, TrainPreview, TrainStep
from .methods import Method, StepContext
from .models import apply_padded
from .patches import PatchSampler, augment

#: the learning rate decays (cosine) from its value to this fraction of it
FINAL_LR_FRACTION = 0.05
#: linear learning-rate warm-up (steps)
WARMUP_STEPS = 20


class TrainingDataError(ValueError):
    """The training data cannot be used as given (empty, too small, NaN, ...)."""


@dataclass
class Run:
    """Everything a prepared training run needs (built by ``training.train``)."""

    config: TrainConfig
    method: Method
    net: torch.nn.Module
    sampler: PatchSampler
    generator: torch.Generator
    device: torch.device
    amp: Optional[torch.dtype]
    channels_last: bool
    struct_range: tuple[float, float]
    seed: int = 0
    val_batch: Optional[dict] = None
    quality: Any = None  # core.live_quality.LiveQuality (estimated PSNR at validation)
    t0: Optional[float] = None  # the budget's start on its clock (None: now)
    average: Optional[WeightAverage] = None  # the weights' EMA (``config.ema > 0``)

    def __post_init__(self) -> None:
        self.now = budget_clock(self.config)
        if self.t0 is None:
            self.t0 = self.now()

    @property
    def n_val(self) -> int:
        return 0 if self.val_batch is None else len(self.val_batch["x"])

    @property
    def eval_net(self) -> torch.nn.Module:
        """The network validation, checkpoints and previews see: the weights' moving
        average when ``config.ema > 0``, else the trained network itself."""
        return self.net if self.average is None else self.average.net


def budget_clock(config: TrainConfig) -> Callable[[], float]:
    """The clock ``config.time_budget_s`` is measured on (wall-clock or process CPU)."""
    return time.process_time if config.clock == "cpu" else time.perf_counter


def to_memory_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """``x`` in channels-last memory format when asked."""
    if not channels_last:
        return x
    fmt = torch.channels_last if x.ndim == 4 else torch.channels_last_3d
    return x.contiguous(memory_format=fmt)


def lr_factor(step: int, progress: float) -> float:
    """Warm-up times cosine decay to :data:`FINAL_LR_FRACTION`."""
    warm = min(1.0, (step + 1) / WARMUP_STEPS)
    cos = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return warm * (FINAL_LR_FRACTION + (1.0 - FINAL_LR_FRACTION) * cos)


def validate(run: Run) -> float:
    """Mean loss of the fixed validation batch (method step without gradient), of
    :attr:`Run.eval_net`."""
    net, cfg, batch = run.eval_net, run.config, run.val_batch
    assert batch is not None
    ctx = StepContext(run.struct_range, 1.0)
    net.eval()
    total = 0.0
    with torch.no_grad(), autocast(run.device, run.amp):
        for i in range(0, run.n_val, cfg.batch_size):
            part = {k: v[i : i + cfg.batch_size] for k, v in batch.items()}
            loss = run.method.loss(net, part, cfg, ctx)
            total += float(loss) * len(part["x"])
    net.train()
    return total / run.n_val


class Checkpoint:
    """The best weights so far by validation loss (without validation: the final ones)."""

    def __init__(self) -> None:
        self.state: Optional[dict] = None
        self.loss, self.step = math.inf, 0

    def offer(self, net: torch.nn.Module, loss: float, step: int) -> None:
        """Keep ``net``'s weights when ``loss`` is the lowest so far."""
        if loss < self.loss:
            self.loss, self.step = loss, step
            self.state = {k: v.detach().clone() for k, v in net.state_dict().items()}

    def follow(self, loss: float, step: int) -> None:
        """No validation region: the model kept is the final one (its learning rate has
        decayed); record the latest training loss and step. The lowest training loss of a
        log window is a noisy criterion: on W2S 010_0 it once kept step 225 of 322, 1.6 dB
        below the final weights (docs/training.md)."""
        self.loss, self.step = loss, step

    def final(self, net: torch.nn.Module,
              current: Optional[torch.nn.Module] = None) -> dict:
        """The best state, loaded into ``net``; when none was kept, the state of
        ``current`` (default ``net``: the averaged network's when training with EMA)."""
        if self.state is None:
            source = net if current is None else current
            self.state = {k: v.detach().clone() for k, v in source.state_dict().items()}
        net.load_state_dict(self.state)
        return {k: v.detach().to("cpu").contiguous() for k, v in self.state.items()}


class Log:
    """Training-loss window, history records and :class:`TrainStep` events."""

    def __init__(self, run: Run, checkpoint: Checkpoint) -> None:
        self.run, self.checkpoint = run, checkpoint
        self.history: list[dict] = []
        self.window: list[torch.Tensor] = []
        self.t_train = self.t_window = run.now()

    def event(self, step: int, lr: float, val_loss: Optional[float],
              estimate: Any = None) -> TrainStep:
        """Close the window: a history record and its event."""
        cfg, run = self.run.config, self.run
        now = run.now()
        loss = float(torch.stack(self.window).mean()) if self.window else math.nan
        rate = len(self.window) * cfg.batch_size / max(now - self.t_window, 1e-9)
        elapsed = now - run.t0
        left = (cfg.steps - step) * (now - self.t_train) / max(step, 1)
        if cfg.time_budget_s is not None:
            left = min(left, max(cfg.time_budget_s - elapsed, 0.0))
        if run.val_batch is None:  # the final (averaged, with EMA) weights are kept
            self.checkpoint.follow(loss, step)
        best = self.checkpoint.loss if run.val_batch is not None else None
        psnr = None if estimate is None else estimate.psnr
        span = None if estimate is None else (estimate.psnr_low, estimate.psnr_high)
        ev = TrainStep(step, cfg.steps, loss, val_loss, rate, elapsed, left, lr, best, psnr,
                       span)
        record = {"step": step, "loss": loss, "val_loss": val_loss, "patches_per_s": rate,
                  "elapsed_s": elapsed, "learning_rate": ev.learning_rate}
        if psnr is not None:
            record["estimated_psnr"] = psnr
        self.history.append(record)
        self.window, self.t_window = [], now
        return ev


# -------------------------------------------------------------------- preview
@dataclass(frozen=True)
class PreviewRequest:
    """Ask :func:`~napari_selfdenoise.core.training.train` to denoise ``image`` every
    ``every_s`` seconds.

    Attributes
    ----------
    image : numpy.ndarray
        The region to preview (in original units).
    axes : str
        Its axes (e.g. ``"YX"``, ``"CYX"``, ``"ZYX"``), with the model's spatial
        dimensions and channels.
    every_s : float
        Seconds between previews.
    region : tuple
        Free-form tag echoed in :class:`~napari_selfdenoise.core.events.TrainPreview`.
    """

    image: np.ndarray
    axes: str
    every_s: float = 3.0
    region: tuple = ()


class LivePreview:
    """The latest preview region, replaceable while training runs.

    A viewer hands it to ``train`` instead of a fixed :class:`PreviewRequest` and calls
    :meth:`update` (from its own thread, with a snapshot it took there) whenever the view
    changes; the next preview denoises the newest region. Thread-safe.
    """

    def __init__(self, request: PreviewRequest) -> None:
        self._lock = threading.Lock()
        self._request = request
        self._version = 0

    def update(self, request: PreviewRequest) -> None:
        """Replace the region to preview."""
        with self._lock:
            self._request = request
            self._version += 1

    def current(self) -> tuple[int, PreviewRequest]:
        """``(version, request)``: the version grows with every :meth:`update`."""
        with self._lock:
            return self._version, self._request


def denoise_normalised(net: torch.nn.Module, x: np.ndarray, device: torch.device,
                       dtype: Optional[torch.dtype], channels_last: bool) -> np.ndarray:
    """Run ``net`` on normalised canonical ``x`` one sample at a time (eval mode)."""
    was_training = net.training
    net.eval()
    out = np.empty_like(x)
    with torch.no_grad(), autocast(device, dtype):
        for n in range(x.shape[0]):
            t = to_memory_format(torch.from_numpy(x[n : n + 1]).to(device), channels_last)
            out[n] = apply_padded(net, t).float().cpu().numpy()[0]
    net.train(was_training)
    return out


class Preview:
    """Live preview: follows a :class:`LivePreview` and denoises its region on demand."""

    def __init__(self, live: LivePreview, norm_only: ModelBundle) -> None:
        self.live, self.norm_only = live, norm_only
        self.version, self.request = -1, live.current()[1]
        self.normalised: Optional[np.ndarray] = None
        self.last = time.perf_counter()

    def refresh(self) -> Optional[Message]:
        """Pick up a region the viewer changed since the last preview."""
        version, request = self.live.current()
        if version == self.version:
            return None
        self.version = version
        try:
            self.normalised, self.request = self._input(request), request
        except (TrainingDataError, AxesError) as exc:
            if self.normalised is None:  # the first region must fit: a caller mistake
                raise
            return Message(f"preview region ignored: {exc}", "warning")
        return None

    def _input(self, request: PreviewRequest) -> np.ndarray:
        b = self.norm_only
        img = np.asarray(request.image)
        canon = to_canonical(img, request.axes)
        if canon.ndim - 2 != b.spatial_dims or canon.shape[1] != b.n_channels:
            raise TrainingDataError(
                f"the preview image (axes {request.axes}, shape {img.shape}) does not match "
                f"the training data ({b.spatial_dims}D, {b.n_channels} channel(s))"
            )
        return b.normalize(canon)

    def due(self) -> bool:
        return time.perf_counter() - self.last >= self.request.every_s

    def events(self, run: Run, step: int,
               net: Optional[torch.nn.Module] = None) -> Generator[Any, None, None]:
        """Refresh the region, denoise it with ``net`` (default :attr:`Run.eval_net`),
        yield the preview (and a note, if any)."""
        note = self.refresh()
        if note is not None:
            yield note
        out = denoise_normalised(run.eval_net if net is None else net, self.normalised,
                                 run.device, run.amp, run.channels_last)
        b = self.norm_only
        yield TrainPreview(step, _denormalised(out, b.norm_offset, b.norm_scale, self.request),
                           self.request.region)
        self.last = time.perf_counter()


def _denormalised(out: np.ndarray, offsets: Sequence[float], scales: Sequence[float],
                  request: PreviewRequest) -> np.ndarray:
    shape = (1, -1) + (1,) * (out.ndim - 2)
    den = out * np.asarray(scales, np.float32).reshape(shape) + np.asarray(
        offsets, np.float32).reshape(shape)
    return from_canonical(den, request.axes, np.shape(request.image))


# ----------------------------------------------------------------------- loop
def run_loop(run: Run, stop: Optional[threading.Event], preview: Optional[Preview],
             checkpoint: Checkpoint, log: Log) -> Generator[Any, None, tuple[int, str]]:
    """Train until the step or time budget is spent or ``stop`` is set.

    Returns ``(steps done, stop reason)``; the last window is logged and the final
    weights validated (they compete for "best" too).
    """
    cfg, net, method = run.config, run.net, run.method
    opt = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
    if cfg.ema > 0:
        run.average = WeightAverage(net, cfg.ema)
    budget = cfg.time_budget_s
    step, reason, validated_at = 0, "steps", -1
    while True:
        elapsed = run.now() - run.t0
        if stop is not None and stop.is_set():
            reason = "stopped"
            break
        if step >= cfg.steps:
            reason = "steps"
            break
        if budget is not None and elapsed >= budget:
            reason = "time"
            break
        progress = step / cfg.steps
        if budget is not None:
            progress = max(progress, elapsed / budget)
        for group in opt.param_groups:
            group["lr"] = cfg.learning_rate * lr_factor(step, progress)
        x = run.sampler.sample(cfg.batch_size)
        if cfg.augment:
            x = augment(x, run.generator)
        x = to_memory_format(x, run.channels_last)
        ctx = StepContext(run.struct_range, min(1.0, progress))
        batch = method.make_batch(x, cfg, run.generator, ctx)
        with autocast(run.device, run.amp):
            loss = method.loss(net, batch, cfg, ctx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if run.average is not None:
            run.average.update(net)
        log.window.append(loss.detach())
        step += 1
        val_loss, estimate = None, None
        if run.val_batch is not None and (step % cfg.val_every == 0 or step == cfg.steps):
            val_loss = validate(run)
            validated_at = step
            estimate = _estimate(run)
            checkpoint.offer(run.eval_net, val_loss, step)
            if run.quality is not None and checkpoint.step == step:
                run.quality.keep()
        if step % cfg.log_every == 0 or val_loss is not None:
            yield log.event(step, opt.param_groups[0]["lr"], val_loss, estimate)
        if preview is not None and preview.due():
            yield from preview.events(run, step)
    final_val: Optional[float] = None
    estimate = None
    if step > 0 and run.val_batch is not None and validated_at != step:
        final_val = validate(run)
        estimate = _estimate(run)
        checkpoint.offer(run.eval_net, final_val, step)
        if run.quality is not None and checkpoint.step == step:
            run.quality.keep()
        if not log.window:  # this step was logged already: complete its record
            log.history[-1]["val_loss"] = final_val
    if log.window:
        yield log.event(step, opt.param_groups[0]["lr"], final_val, estimate)
    return step, reason


def _estimate(run: Run) -> Any:
    """The live estimated quality of the current weights (None without a region)."""
    if run.quality is None:
        return None
    return run.quality.update(run.eval_net, run.method, run.config)
