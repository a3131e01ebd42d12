"""``napari-selfdenoise demo`` end to end with a tiny budget."""

from __future__ import annotations

import contextlib
import io
import re

import numpy as np
import pytest

from napari_selfdenoise.cli import main
from napari_selfdenoise.cli.demo_cmd import DEFAULT_METHOD

PSNR_LINE = re.compile(r"^PSNR (noisy|denoised):\s+([0-9.]+) dB", re.MULTILINE)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """Run the demo once and keep its outputs and stdout.

    A step budget (40 steps, ~15 s on an idle 2-core CPU) makes the run deterministic
    whatever the load of the machine; the time budget is only a safety net.
    """
    out = tmp_path_factory.mktemp("demo")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["demo", "--out", str(out), "--steps", "40", "--seconds", "900"])
    return code, out, stdout.getvalue()


def test_demo_prints_psnr_above_the_noisy_input(demo_run):
    code, _, stdout = demo_run
    assert code == 0
    scores = {name: float(value) for name, value in PSNR_LINE.findall(stdout)}
    assert set(scores) == {"noisy", "denoised"}, stdout
    assert 18.0 < scores["noisy"] < 23.0
    assert scores["denoised"] > scores["noisy"] + 1.0, stdout
    assert "40 steps" in stdout


def test_demo_writes_tiff_png_and_model(demo_run):
    import tifffile
    from matplotlib.image import imread

    from napari_selfdenoise.core.bundle import ModelBundle
    from napari_selfdenoise.core.samples import phantom_2d, psnr

    _, out, stdout = demo_run
    with tifffile.TiffFile(out / "phantom2d_denoised.tif") as tif:
        assert tif.series[0].axes == "YX"
        denoised = tif.asarray()
    phantom = phantom_2d()
    assert denoised.shape == phantom.clean.shape and np.isfinite(denoised).all()
    # the printed figure is the PSNR of the written file
    printed = float(PSNR_LINE.findall(stdout)[1][1])
    assert psnr(phantom.clean, denoised) == pytest.approx(printed, abs=0.01)
    np.testing.assert_array_equal(tifffile.imread(out / "phantom2d_noisy.tif"), phantom.noisy)

    png = imread(out / "phantom2d_demo.png")
    assert png.shape[0] > 400 and png.shape[1] > 800
    assert png[..., :3].std() > 0.05  # not a blank canvas

    bundle = ModelBundle.load(out / f"phantom2d_{DEFAULT_METHOD}.sdmodel")
    assert bundle.config.method == DEFAULT_METHOD and bundle.axes == "YX"


@pytest.mark.parametrize(
    "budget, message",
    [(["--seconds", "0"], "--seconds must be positive"),
     (["--seconds", "nan"], "--seconds must be positive"),
     (["--steps", "0"], "--steps must be at least 1")],
)
def test_demo_rejects_a_bad_budget(budget, message, tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "out"), *budget]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
