"""Shared plumbing of the dock widgets: layer snapshots and axes, output layers,
one-run-at-a-time worker glue, the session model registry and settings persistence.

Everything here runs on the main (GUI) thread except the generator handed to
:class:`Runner`, which runs in a napari thread worker and only yields events back.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Callable, Generator, Optional

import numpy as np

from ..core import presets
from ..core.axes import AxesError, infer_axes, validate_axes
from ..core.bundle import METADATA_KEY
CONFIG_ENV = "NAPARI_SELFDENOISE_CONFIG_DIR"
_LABEL_LETTERS = {
    "t": "T", "time": "T", "frame": "T", "s": "S", "sample": "S",
    "c": "C", "ch": "C", "channel": "C", "z": "Z", "depth": "Z", "y": "Y", "x": "X",
}
IN_MEMORY_COPY_BYTES = 512 * 1024**2


# --------------------------------------------------------------------- layers and axes
def layer_axes(layer: Any) -> str:
    """Axes of an image layer, from its axis labels when they name axes, else inferred.

    Raises
    ------
    AxesError
        For RGB layers (not a fluorescence channel layout).
    """
    if getattr(layer, "rgb", False):
        raise AxesError(
            f"layer {layer.name!r} is RGB; denoise a grayscale or multi-channel layer instead"
        )
    shape = layer_data(layer).shape
    stored = layer.metadata.get("axes")  # set by our readers and sample data
    if isinstance(stored, str):
        try:
            return validate_axes(stored, shape)
        except AxesError:
            pass
    labels = [str(a).strip().lower() for a in getattr(layer, "axis_labels", ())]
    letters = "".join(_LABEL_LETTERS.get(a, "?") for a in labels)
    if len(letters) == len(shape) and "?" not in letters:
        try:
            return validate_axes(letters, shape)
        except AxesError:
            pass
    return infer_axes(shape, allow_rgb=True)


def layer_data(layer: Any) -> Any:
    """The full-resolution data of a (possibly multiscale) image layer, without loading it."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def snapshot(layer: Any) -> Any:
    """The data to hand to a worker, taken on the main thread.

    In-memory arrays up to 512 MiB are copied (edits made while a run goes on do not
    reach it); dask / zarr / larger data are passed as they are (read lazily).
    """
    data = layer_data(layer)
    if isinstance(data, np.ndarray) and data.nbytes <= IN_MEMORY_COPY_BYTES:
        return data.copy()
    return data


def output_layer_kwargs(source: Any) -> dict:
    """Scale, translate, units and axis labels of ``source`` for a derived layer."""
    kwargs = {
        "scale": tuple(source.scale),
        "translate": tuple(source.translate),
        "axis_labels": tuple(source.axis_labels),
    }
    units = getattr(source, "units", None)
    if units is not None:
        kwargs["units"] = tuple(str(u) for u in units)
    return kwargs


def add_or_update_image(viewer: Any, name: str, data: Any, source: Any, metadata: dict,
                        **kwargs: Any) -> Any:
    """Replace the data of layer ``name`` (or add it) with ``source``'s geometry."""
    geometry = output_layer_kwargs(source)
    geometry.update(kwargs)
    if name in viewer.layers:
        layer = viewer.layers[name]
        layer.data = data
        layer.metadata.update(metadata)
        for key in ("scale", "translate"):
            setattr(layer, key, geometry[key])
        return layer
    geometry.setdefault("contrast_limits", getattr(source, "contrast_limits", None))
    if geometry["contrast_limits"] is None:
        del geometry["contrast_limits"]
    return viewer.add_image(data, name=name, metadata=dict(metadata), **geometry)


def show_result(viewer: Any, name: str, data: Any, source_name: str, metadata: dict,
                **kwargs: Any) -> Any:
    """Show a widget's result as layer ``name``: with the geometry and colormap of layer
    ``source_name`` while it is open, else as a plain new layer."""
    if source_name in viewer.layers:
        src = viewer.layers[source_name]
        return add_or_update_image(viewer, name, data, src, metadata,
                                   colormap=src.colormap.name, **kwargs)
    return viewer.add_image(data, name=name, metadata=metadata, **kwargs)


def image_layers(viewer: Any) -> list:
    """Image layers of ``viewer`` (RGB ones included; they are refused with a message)."""
    from napari.layers import Image

    return [lay for lay in viewer.layers if isinstance(lay, Image)]


# ------------------------------------------------------------------- session registry
class SessionModels:
    """Models trained in this session, shared between widgets (latest last)."""

    def __init__(self) -> None:
        self.models: dict[str, Any] = {}
        self._listeners: list[Callable[[], None]] = []

    def add(self, name: str, bundle: Any) -> None:
        self.models.pop(name, None)
        self.models[name] = bundle
        for callback in list(self._listeners):
            try:
                callback()
            except RuntimeError:  # its widget was deleted without disconnecting
                self.disconnect(callback)

    def latest(self) -> Optional[tuple[str, Any]]:
        if not self.models:
            return None
        name = next(reversed(self.models))
        return name, self.models[name]

    def connect(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    def disconnect(self, callback: Callable[[], None]) -> None:
        if callback in self._listeners:
            self._listeners.remove(callback)


SESSION = SessionModels()


def layers_with_models(viewer: Any) -> list:
    """Layers whose metadata carries a model, in layer order."""
    return [lay for lay in viewer.layers if isinstance(lay.metadata.get(METADATA_KEY), dict)]


# ----------------------------------------------------------------- settings persistence
def config_dir() -> Path:
    """Where last settings are remembered (``$NAPARI_SELFDENOISE_CONFIG_DIR`` overrides)."""
    override = os.environ.get(CONFIG_ENV)
    if override:
        return Path(override)
    try:
        from platformdirs import user_config_dir

        return Path(user_config_dir("napari-selfdenoise"))
    except ImportError:
        return Path.home() / ".config" / "napari-selfdenoise"


def last_settings_path(kind: str) -> Path:
    return config_dir() / f"last_{kind}.json"


def load_last_settings(kind: str) -> Optional[Any]:
    """The settings saved by the last session, or None (a stale or broken file is ignored)."""
    path = last_settings_path(kind)
    if not path.is_file():
        return None
    try:
        return presets.load_preset(path, kind=kind)
    except presets.PresetError:
        return None


def remember_settings(settings: Any) -> None:
    """Store ``settings`` as the widget's last settings (errors are ignored: best effort)."""
    try:
        presets.save_preset(last_settings_path(presets.kind_of(settings)), settings)
    except OSError:
        pass


# --------------------------------------------------------------------------- workers
class Runner:
    """Runs one core generator at a time in a napari thread worker.

    Events reach ``on_event`` on the main thread; the generator's return value reaches
    ``on_done`` (also on the main thread) and any exception ``on_error``. :meth:`stop`
    sets the run's ``threading.Event`` (the engines return what they have so far);
    :meth:`shutdown` stops and waits, so closing a widget leaves no thread behind.
    """

    def __init__(self) -> None:
        self.worker: Any = None
        self.stop_event = threading.Event()
        self.closing = threading.Event()  # set for good by shutdown()
        self._finished = threading.Event()
        self._finished.set()
        self._closed = False

    @property
    def running(self) -> bool:
        return not self._finished.is_set()

    def start(
        self,
        make: Callable[[threading.Event], Generator[Any, None, Any]],
        on_event: Callable[[Any], None],
        on_done: Callable[[Any], None],
        on_error: Callable[[BaseException], None],
        on_finished: Callable[[], None],
    ) -> None:
        """Start ``make(stop_event)`` in a worker; refuses when a run is going on."""
        from napari.qt.threading import create_worker

        if self.running:
            raise RuntimeError("a run is already going on; stop it first")
        self.stop_event = threading.Event()
        self._finished.clear()
        finished = self._finished
        gen = make(self.stop_event)

        def work() -> Generator[Any, None, Any]:
            try:
                return (yield from gen)
            finally:
                finished.set()

        guard = self._guard
        worker = create_worker(work, _start_thread=False)
        worker.yielded.connect(guard(on_event))
        worker.returned.connect(guard(on_done))
        worker.errored.connect(guard(on_error))
        worker.finished.connect(guard(lambda: on_finished()))
        self.worker = worker
        worker.start()

    def _guard(self, callback: Callable) -> Callable:
        def call(*args: Any) -> None:
            if not self._closed:
                callback(*args)

        return call

    def stop(self) -> None:
        """Ask the run to stop (it keeps and returns what it has)."""
        self.stop_event.set()

    def shutdown(self, timeout_s: float = 30.0) -> bool:
        """Stop, detach the callbacks and wait for the thread; True when it ended."""
        self._closed = True
        self.closing.set()
        self.stop_event.set()  # the engines check it between steps and return
        ended = self._finished.wait(timeout_s)
        worker, self.worker = self.worker, None
        if worker is not None:  # napari keeps finished workers until their signals land:
            for signal in (worker.yielded, worker.returned, worker.errored, worker.finished):
                try:  # ... drop our callbacks so they do not keep the widget alive
                    signal.disconnect()
                except (TypeError, RuntimeError):
                    pass
        return ended


def format_duration(seconds: Optional[float]) -> str:
    """``75.2`` -> ``"1:15"``; ``None`` -> ``"?"``."""
    if seconds is None or not np.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def user_message(exc: BaseException) -> str:
    """The CLI's one-line message for an error a user can fix, else the type and message."""
    from ..core.validation import is_user_error
    from ..core.validation import user_message as one_line

    if is_user_error(exc):
        return one_line(exc)
    return f"{type(exc).__name__}: {exc}"
