"""Train widget, end to end in a real viewer through the manifest."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import LatencyProbe, wait_until

from napari_selfdenoise._widgets import _common
from napari_selfdenoise._widgets._view import camera_of
from napari_selfdenoise._widgets.train_widget import (
    NOISE_PENDING, PREVIEW_SUFFIX, QUALITY_PENDING, TrainWidget,
)
from napari_selfdenoise.core.bundle import METADATA_KEY, ModelBundle
from napari_selfdenoise.core.inference import predict_array
from napari_selfdenoise.core.provenance import PROVENANCE_KEY
from napari_selfdenoise.core.training import resolve_config


def tiny(widget: TrainWidget, steps: int = 30, method: str = "n2v") -> None:
    """Small, fast settings (a few seconds of CPU)."""
    o = widget.options
    o.method.setCurrentIndex(o.method.findData(method))
    o.budget.setValue(steps)
    o.patch.setText("32, 32")
    o.batch.setValue(4)
    o.depth.setValue(1)
    o.filters.setValue(8)
    o.val_fraction.setValue(0.2)
    o.preview_every.setValue(0.5)


@pytest.fixture
def trained_layer(viewer, noisy2d):
    noisy, _ = noisy2d
    return viewer.add_image(noisy, name="noisy", scale=(0.2, 0.3), translate=(5, 7),
                            axis_labels=("y", "x"), units=("um", "um"))


def test_train_end_to_end(viewer, dock, qtbot, trained_layer, tmp_path, noisy2d):
    widget = dock("Train")
    assert isinstance(widget, TrainWidget)
    assert widget.axes_edit.text() == "YX"
    tiny(widget, steps=30)
    widget.options.save_model_to.setText(str(tmp_path / "model.sdmodel"))
    shown = []  # every layer added (the preview may be replaced by the result between checks)
    viewer.layers.events.inserted.connect(lambda e: shown.append(e.value.name))
    assert widget.start()
    assert widget.stop_button.isEnabled() and not widget.start_button.isEnabled()
    assert not widget.options.isEnabled() and not widget.layer_combo.isEnabled()
    wait_until(qtbot, lambda: widget.first_preview_s is not None, 60)
    assert "noisy" + PREVIEW_SUFFIX in shown
    wait_until(qtbot, lambda: "noisy [n2v]" in viewer.layers, 90)
    wait_until(qtbot, lambda: widget.start_button.isEnabled(), 10)
    out = viewer.layers["noisy [n2v]"]
    src = trained_layer
    assert out.data.shape == src.data.shape
    assert tuple(out.scale) == tuple(src.scale)
    assert tuple(out.translate) == tuple(src.translate)
    assert tuple(out.axis_labels) == ("y", "x")
    assert [str(u) for u in out.units] == [str(u) for u in src.units]
    bundle = ModelBundle.from_metadata(out.metadata[METADATA_KEY])
    assert bundle.info["noise_model"]["a"]  # estimated, stored and shown
    assert widget.noise_label.text().startswith("noise model: var = ")
    assert bundle.method == "n2v" and bundle.config.network.base_filters == 8
    prov = out.metadata[PROVENANCE_KEY]
    assert prov["source"] == "noisy" and prov["operation"] == "train"
    assert prov["method"] == "n2v" and prov["package_version"]
    assert prov["settings"]["train"]["steps"] == 30
    assert ModelBundle.load(tmp_path / "model.sdmodel").config == bundle.config
    assert "noisy" + PREVIEW_SUFFIX not in viewer.layers  # replaced by the result
    assert widget.loss_plot.steps and widget.loss_plot.val_steps
    assert widget.progress.value() == widget.progress.maximum()
    assert _common.SESSION.latest()[0] == "noisy [n2v]"
    # the layer is exactly what the model in its metadata makes of the source
    expected = predict_array(bundle, noisy2d[0], axes="YX")
    np.testing.assert_allclose(out.data, expected, rtol=1e-4, atol=1e-4)


def test_stop_keeps_the_model_and_continue_trains_it(viewer, dock, qtbot, trained_layer):
    widget = dock("Train")
    tiny(widget, steps=100_000)
    widget.options.preview.setChecked(False)
    widget.start()
    wait_until(qtbot, lambda: len(widget.loss_plot.steps) >= 2, 60)
    widget.stop_button.click()
    wait_until(qtbot, lambda: widget.start_button.isEnabled(), 60)
    bundle = widget.bundle
    assert bundle.info["stop_reason"] == "stopped"
    assert 0 < bundle.info["steps"] < 100_000
    assert "noisy [n2v]" in viewer.layers
    assert widget.options.isEnabled() and widget.continue_button.isEnabled()
    assert not widget.stop_button.isEnabled()
    first_steps = len(widget.loss_plot.steps)
    widget.options.budget.setValue(20)
    assert widget.continue_training()
    wait_until(qtbot, lambda: widget.bundle is not bundle, 60)
    assert widget.bundle.info["stop_reason"] == "steps"
    assert len(widget.loss_plot.steps) > first_steps  # the curve goes on
    assert np.all(np.diff(widget.loss_plot.steps) > 0)


def test_a_new_run_resets_the_noise_and_quality_labels(viewer, dock, qtbot, trained_layer):
    widget = dock("Train")
    tiny(widget, steps=20)
    widget.options.preview.setChecked(False)
    assert widget.start()
    wait_until(qtbot, lambda: widget.bundle is not None and widget.start_button.isEnabled(), 60)
    first = widget.bundle
    assert widget.noise_label.text().startswith("noise model: var = ")
    assert widget.quality_label.text().startswith("estimated PSNR: ")
    assert widget.quality_label.text() != QUALITY_PENDING
    # a continued run keeps the model's noise model; its quality is not known yet
    noise_text = widget.noise_label.text()
    assert widget.continue_training()
    assert widget.quality_label.text() == QUALITY_PENDING
    assert widget.noise_label.text() == noise_text
    wait_until(qtbot, lambda: widget.bundle is not first and widget.start_button.isEnabled(),
               60)
    assert widget.quality_label.text() != QUALITY_PENDING
    # a new run estimates both again: the last run's values are not shown meanwhile
    second = widget.bundle
    assert widget.start()
    assert widget.noise_label.text() == NOISE_PENDING
    assert widget.quality_label.text() == QUALITY_PENDING
    wait_until(qtbot, lambda: widget.bundle is not second and widget.start_button.isEnabled(),
               60)
    assert widget.noise_label.text().startswith("noise model: var = ")
    assert widget.quality.warning_label.isHidden()  # white noise: nothing to warn about


def test_correlated_noise_is_pinned_under_the_estimate(viewer, dock, qtbot):
    """The noise check's warning (noise correlated along an axis, which breaks the
    estimate's and the masking methods' assumption) stays visible under the estimated PSNR
    for the run it belongs to; a new run hides it until its own check; white noise shows
    none (the other tests' phantom)."""
    from napari_selfdenoise.core.samples import phantom_correlated

    viewer.add_image(phantom_correlated((128, 128), seed=3).noisy, name="correlated")
    widget = dock("Train")
    tiny(widget, steps=10, method="n2s")
    widget.options.preview.setChecked(False)
    warning = widget.quality.warning_label
    assert warning.isHidden()
    assert widget.start()
    wait_until(qtbot, lambda: widget.bundle is not None and widget.start_button.isEnabled(), 60)
    first = widget.bundle
    assert not warning.isHidden() and "correlated along" in warning.text()
    assert first.info["estimated_quality"]["warning"] in warning.text()
    assert widget.continue_training()
    assert warning.isHidden()  # until the continued run's own check
    wait_until(qtbot, lambda: widget.bundle is not first and widget.start_button.isEnabled(),
               60)
    assert not warning.isHidden() and "correlated along" in warning.text()


def test_user_mistakes_are_messages(viewer, dock):
    widget = dock("Train")
    assert widget.guarded(widget.start) is None
    assert "choose an image layer" in widget.status.text()
    viewer.add_image(np.zeros((4, 40, 40), np.float32), name="stack")
    widget.axes_edit.setText("ZYXC")
    assert widget.guarded(widget.start) is None
    assert "name 4 dimensions but the data has 3" in widget.status.text()
    assert widget.start_button.isEnabled()
    assert widget.guarded(widget.continue_training) is None
    assert "train a model first" in widget.status.text()


def test_form_shows_each_methods_defaults(viewer, dock):
    """What the form shows is what runs: choosing a method shows its own defaults."""
    from napari_selfdenoise.core.config import default_config

    widget = dock("Train")
    o = widget.options
    for method in ("n2same", "n2v", "n2s", "n2v2"):
        o.method.setCurrentIndex(o.method.findData(method))
        shown, expected = widget.settings().train, default_config(method)
        assert shown.learning_rate == pytest.approx(expected.learning_rate), method
        assert shown.batch_size == expected.batch_size, method
        assert shown.network.base_filters == expected.network.base_filters, method
        assert shown.normalization == expected.normalization, method
        assert shown.masking.grid == expected.masking.grid, method
        assert shown.masking.masked_fraction == pytest.approx(
            expected.masking.masked_fraction), method


def test_defaults_button_replaces_remembered_settings(viewer):
    """Settings remembered from an older session (the paper's 4e-4, [0, 1] scaling) give
    way to the current defaults on request."""
    from napari_selfdenoise.core import presets
    from napari_selfdenoise.core.config import TrainConfig, default_config

    old = presets.TrainSettings(train=TrainConfig(
        method="n2v2", learning_rate=4e-4,
        normalization={"kind": "percentile", "pmin": 0.5, "pmax": 99.5}))
    presets.save_preset(_common.last_settings_path("train"), old)
    widget = TrainWidget(viewer)
    try:
        remembered = widget.settings().train  # remembered settings come back first
        assert remembered.method == "n2v2" and remembered.learning_rate == pytest.approx(4e-4)
        assert remembered.normalization == old.train.normalization
        widget.defaults_button.click()
        shown, expected = widget.settings().train, default_config()
        assert shown.method == "n2s"  # the measured default (methods.DEFAULT_METHOD)
        for key in ("method", "learning_rate", "batch_size", "normalization", "masking",
                    "steps", "seed"):
            assert getattr(shown, key) == getattr(expected, key), key
        assert shown.network.base_filters == expected.network.base_filters
        assert "default settings restored" in widget.status.text()
    finally:
        widget.shutdown()


def test_preset_save_load_run_reproduces_settings(viewer, dock, qtbot, trained_layer,
                                                  tmp_path):
    widget = dock("Train")
    tiny(widget, steps=12, method="n2same")
    widget.options.lambda_inv.setValue(1.5)
    widget.options.lr.setValue(0.001)
    widget.options.preview.setChecked(False)
    saved = widget.settings()
    path = widget.save_preset(tmp_path / "preset.json")
    tiny(widget, steps=99, method="n2v2")
    widget.options.lr.setValue(0.0002)
    assert widget.settings() != saved
    assert widget.load_preset(path) == saved
    assert widget.settings() == saved
    widget.start()
    wait_until(qtbot, lambda: "noisy [n2same]" in viewer.layers, 90)
    wait_until(qtbot, lambda: widget.start_button.isEnabled(), 10)
    cfg = widget.bundle.config
    expected = resolve_config(saved.train)  # + the method's defaults for unset keys
    for key in ("method", "lambda_inv", "learning_rate", "batch_size", "steps", "network",
                "masking", "val_fraction", "seed"):
        assert getattr(cfg, key) == getattr(expected, key), key
    # the last settings are remembered for the next session
    fresh = TrainWidget(viewer)
    assert fresh.settings() == saved
    fresh.shutdown()


def test_batch_over_three_inputs_with_one_bad_file(viewer, dock, qtbot, tmp_path):
    import tifffile

    from napari_selfdenoise.core.samples import phantom_2d

    folder = tmp_path / "in"
    folder.mkdir()
    for seed in (1, 2):
        tifffile.imwrite(folder / f"img{seed}.tif", phantom_2d((40, 40), seed=seed).noisy)
    (folder / "bad.tif").write_bytes(b"not an image")
    widget = dock("Train")
    tiny(widget, steps=5)
    widget.axes_edit.setText("")
    from napari_selfdenoise.core.presets import expand_inputs

    assert widget.run_batch(expand_inputs([folder]), str(tmp_path / "out"))
    wait_until(qtbot, lambda: hasattr(widget, "last_batch_report"), 120)
    report = widget.last_batch_report
    assert sorted(report.outputs) == ["img1.tif", "img2.tif"]
    assert list(report.failures) == ["bad.tif"]
    assert (tmp_path / "out" / "img1_n2v.tif").exists()
    assert (tmp_path / "out" / "img2_n2v.sdmodel").exists()
    assert "1 of" not in widget.status.text() and "bad.tif" in widget.status.text()
    assert widget.progress.value() == widget.progress.maximum()


@pytest.mark.perf
def test_event_loop_stays_responsive_while_training(viewer, dock, qtbot, trained_layer):
    """A 20 ms QTimer during a real training run: p95 lateness under 100 ms."""
    widget = dock("Train")
    tiny(widget, steps=100_000)
    widget.options.preview_every.setValue(2.0)
    probe = LatencyProbe(20)
    widget.start()
    wait_until(qtbot, lambda: len(widget.loss_plot.steps) >= 1, 60)
    probe.start()
    qtbot.wait(4000)
    lateness = probe.stop()
    widget.stop()
    wait_until(qtbot, lambda: widget.start_button.isEnabled(), 60)
    p95 = float(np.percentile(lateness, 95))
    assert len(lateness) > 50
    assert p95 < 100, f"p95 event-loop lateness {p95:.1f} ms"


def test_preview_region_is_the_displayed_slice(viewer):
    from napari_selfdenoise._widgets import _view

    stack = np.arange(5 * 300 * 200, dtype=np.float32).reshape(5, 300, 200)
    layer = viewer.add_image(stack, name="stack", scale=(1, 0.5, 0.5), translate=(0, 10, 20))
    viewer.dims.set_point(0, 2)
    camera_of(viewer).center = (0, 10 + 150 * 0.5, 20 + 100 * 0.5)  # data pixel (150, 100)
    camera_of(viewer).zoom = 4.0  # 512 screen pixels show 128 world units = 256 data pixels
    image, index, axes = _view.view_region(viewer, layer, "TYX", canvas_px=512, max_side=128)
    assert axes == "YX" and index[0] == 2
    assert image.shape == (128, 128)
    assert index[1] == slice(86, 214) and index[2] == slice(36, 164)
    np.testing.assert_array_equal(image, stack[index])
    geometry = _view.region_geometry(layer, index)
    assert geometry["translate"] == (2.0, 10 + 86 * 0.5, 20 + 36 * 0.5)
    assert _view.expand_to_layer(image, index).shape == (1, 128, 128)
    # zoomed out: everything is visible, and the crop never exceeds the data
    camera_of(viewer).zoom = 0.5
    image, index, _ = _view.view_region(viewer, layer, "TYX", canvas_px=100, max_side=512)
    assert image.shape == (300, 200)


def test_live_preview_follows_panning_during_training(viewer, dock, qtbot):
    """Zoom in and pan while training runs: the preview moves to the region now in view."""
    from napari_selfdenoise.core.samples import phantom_2d

    layer = viewer.add_image(phantom_2d((320, 320), seed=2).noisy.astype(np.float32),
                             name="big")
    widget = dock("Train")
    tiny(widget, steps=100_000)
    widget.options.preview_every.setValue(0.2)
    camera_of(viewer).zoom = 8.0
    camera_of(viewer).center = (0, 60, 60)
    widget.start()
    name = layer.name + PREVIEW_SUFFIX
    wait_until(qtbot, lambda: name in viewer.layers, 60)
    before = tuple(viewer.layers[name].translate)
    camera_of(viewer).center = (0, 260, 250)  # pan to the opposite corner
    wait_until(qtbot, lambda: tuple(viewer.layers[name].translate) != before, 60)
    after = viewer.layers[name].translate
    assert after[0] > before[0] + 100 and after[1] > before[1] + 100
    widget.stop()
    # the thread ends first; the widget learns it from a queued signal (re-enabling Start)
    wait_until(qtbot, lambda: widget.start_button.isEnabled(), 60)
    assert widget._live is None  # view events disconnected once the run ended


@pytest.mark.parametrize("close", ["dock", "viewer"])
def test_closing_stops_training(viewer, dock, qtbot, trained_layer, close):
    widget = dock("Train")
    tiny(widget, steps=100_000)
    widget.start()
    wait_until(qtbot, lambda: len(widget.loss_plot.steps) >= 1, 60)
    runner = widget.runner
    if close == "dock":
        viewer.window.remove_dock_widget(widget)
    else:
        viewer.close()
    assert runner.closing.is_set() and runner.stop_event.is_set()
    assert not runner.running  # shutdown waited for the thread


def test_fresh_form_and_cli_start_from_the_measured_default_method(viewer, tmp_path):
    """No remembered settings: the form shows Noise2Self with its defaults, as the CLI does."""
    import argparse

    from napari_selfdenoise.cli.method_options import add_method_arguments
    from napari_selfdenoise.core.config import default_config
    from napari_selfdenoise.core.methods import DEFAULT_METHOD

    assert not _common.last_settings_path("train").exists()
    widget = TrainWidget(viewer)
    try:
        assert widget.options.method.currentData() == DEFAULT_METHOD == "n2s"
        assert widget.settings().train.masking == default_config().masking
    finally:
        widget.shutdown()
    parser = argparse.ArgumentParser()
    add_method_arguments(parser)
    assert parser.parse_args([]).method == DEFAULT_METHOD
