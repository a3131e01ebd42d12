"""Compare widget, end to end in a real viewer through the manifest (issue #14)."""

from __future__ import annotations

import numpy as np
from conftest import wait_until

from napari_selfdenoise._widgets.compare_widget import RANKING_KEY, CompareWidget
from napari_selfdenoise.core.provenance import PROVENANCE_KEY
from napari_selfdenoise.core.samples import phantom_2d


def test_compare_end_to_end(viewer, dock, qtbot, tmp_path):
    ph = phantom_2d((96, 96), seed=9)
    viewer.add_image(ph.noisy, name="noisy")
    widget = dock("Compare")
    assert isinstance(widget, CompareWidget)
    widget.budget.setValue(5)
    widget.clock.setCurrentIndex(widget.clock.findData("cpu"))
    widget.methods.setText("n2s")
    widget.blend.setChecked(False)
    settings = widget.settings()
    assert settings.compare.methods == ["n2s"] and settings.compare.budget_s == 5
    assert not settings.compare.blend
    path = widget.save_preset(tmp_path / "cmp.json")
    widget.methods.setText("n2v")
    widget.blend.setChecked(True)
    assert widget.load_preset(path) == settings and widget.methods.text() == "n2s"
    assert not widget.blend.isChecked()
    widget.blend.setChecked(True)
    assert widget.run()
    assert not widget.run_button.isEnabled() and widget.stop_button.isEnabled()
    wait_until(qtbot, lambda: not widget.runner.running, 900)
    # the result reaches the main thread through a queued signal after the worker ends
    wait_until(qtbot, lambda: widget.result is not None or "failed" in widget.status.text(), 60)
    res = widget.result
    assert res is not None, widget.status.text()
    name = f"noisy [compare: {res.pick}]"
    wait_until(qtbot, lambda: name in viewer.layers, 30)
    out = viewer.layers[name]
    assert out.data.shape == ph.noisy.shape
    ranking = out.metadata[RANKING_KEY]
    assert ranking["pick"] == res.pick == ranking["candidates"][0]["name"]
    names = [c["name"] for c in ranking["candidates"]]
    assert "n2s" in names and "gaussian" in names
    assert out.metadata[PROVENANCE_KEY]["ranking"]["pick"] == res.pick
    # the live table shows every candidate, best first
    assert widget.table.rowCount() == len(names)
    assert [widget.table.item(i, 0).text() for i in range(len(names))] == names
    assert widget.filter_plot.curves  # the filters' calibration curves were drawn
    assert np.mean((out.data - ph.clean) ** 2) < np.mean((ph.noisy - ph.clean) ** 2)


def test_the_correlated_noise_warning_is_notified_once_a_run(viewer, dock):
    """Every ranking of a run carries the warning, and the run ends with it as a Message:
    the user is told once (a notification), not at every ranking."""
    from napari.utils.notifications import notification_manager

    from napari_selfdenoise.core import events

    widget = dock("Compare")
    text = "the noise looks spatially correlated along X (test)"
    before = len(notification_manager.records)
    for _ in range(3):
        widget._on_event(events.CompareRanking((), "gaussian", 1.0, 1.0, 5.0, text))
    widget._on_event(events.Message(text, "warning", topic=events.NOISE_CORRELATION))
    shown = [n for n in notification_manager.records[before:] if text in str(n.message)]
    assert len(shown) == 1
    widget._on_event(events.CompareRanking((), "gaussian", 1.0, 1.0, 5.0, "another warning"))
    assert widget.status.text() == "another warning"  # a new warning is told
    widget._on_event(events.Message("pick: gaussian", "info"))
    assert widget.status.text() == "pick: gaussian"  # other messages as before


def test_opening_train_or_compare_starts_the_optimiser_import(viewer, dock, monkeypatch):
    import sys

    from napari_selfdenoise.core import preload

    for name in ("Train", "Compare"):
        monkeypatch.setattr(preload, "_thread", None)  # as in a fresh process
        dock(name)
        assert preload._thread is not None, name
        preload._thread.join(300)
        assert preload.MODULE in sys.modules
