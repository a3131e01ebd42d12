"""Catalogue, faults (issue #15): ``kill -9`` during an OME-Zarr prediction, then the same
command: it resumes to the uninterrupted result, every pyramid level equal to the 2x mean
of the level above, the metadata valid, nothing stray left beside it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from _reliability import cli, digest, listing
from test_reliability_kill9 import PRED, kill_at_random

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from test_ome_zarr import check_pyramid, validate  # noqa: E402

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_kill9_during_ome_zarr_predict_then_rerun_resumes(tmp_path, model_file, version):
    from napari_selfdenoise.core.bundle import ModelBundle
    from napari_selfdenoise.core.inference import predict_array

    stack = tmp_path / "in" / "s.tif"
    stack.parent.mkdir()
    tifffile.imwrite(stack, (np.random.default_rng(4).random((6, 160, 160)) * 100)
                     .astype(np.float32), metadata={"axes": "TYX"})
    out = tmp_path / "out" / "o.ome.zarr"
    args = ["predict", model_file, stack, "--out", out, "--ome-zarr-version", version, *PRED]
    before = digest(stack, model_file)
    when = kill_at_random(args, 2.5, 5.0, 7 if version == "0.5" else 8)
    assert digest(stack, model_file) == before, when
    rc, _, err = cli(*args)
    assert rc == 0, (when, err)
    whole = predict_array(ModelBundle.load(model_file), tifffile.imread(stack), axes="TYX",
                          precision="fp32", device="cpu", tile_shape=(48, 48), batch_size=1)
    group, _ = validate(out, version)
    np.testing.assert_allclose(zarr.open_group(str(out), mode="r")["0"][...], whole,
                               atol=1e-5, err_msg=when)
    levels = check_pyramid(group)
    assert len(levels) >= 2 and not any(np.isnan(lev).any() for lev in levels), when
    assert listing(out.parent) == ["o.ome.zarr"], when
