"""``napari-selfdenoise noise`` prints the estimated noise model; ``train`` prints it too.

A stack larger than the pixel budget is read only in part (counted on a real zarr store),
one region at a time, and the estimate from that sample stays within tolerance."""

import json

import numpy as np
import pytest
import tifffile
import zarr
import zarr.storage

from napari_selfdenoise.cli import main
from napari_selfdenoise.core.noise_model import read_noise_sample, sample_regions
from napari_selfdenoise.core.samples import phantom_3d


def test_noise_command(tmp_path, capsys):
    path = tmp_path / "p.tif"
    tifffile.imwrite(path, phantom_3d((16, 128, 128), seed=3).noisy * 0.5)
    assert main(["noise", str(path), "--axes", "ZYX", "--json"]) == 0
    nm = json.loads(capsys.readouterr().out)
    assert abs(nm["a"][0] - 0.5) < 0.05 and abs(nm["b"][0] - 1.0) < 0.1
    assert (nm["correlation_range"], nm["pd_train_auto"]) == (0, 2)  # white noise
    assert main(["noise", str(path), "--axes", "ZYX"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("noise model: var = ")
    assert lines[1].startswith("noise correlation at lags 1-3: X ") and lines[1].endswith(
        "range 0 (pixel shuffle auto: training factor 2)")


def test_noise_command_gives_the_correlation_range(tmp_path, capsys):
    from napari_selfdenoise.core.samples import phantom_correlated

    path = tmp_path / "c.tif"
    tifffile.imwrite(path, phantom_correlated((256, 256), seed=0).noisy)
    assert main(["noise", str(path), "--json"]) == 0
    nm = json.loads(capsys.readouterr().out)
    assert (nm["correlation_range"], nm["pd_train_auto"]) == (2, 3)


@pytest.fixture
def chunk_reads(monkeypatch):
    """The chunk keys read from any local zarr store (a spy on the real store)."""
    keys: list[str] = []
    real = zarr.storage.LocalStore.get

    async def get(self, key, *args, **kwargs):
        if not key.endswith((".json", ".zarray", ".zgroup", ".zattrs")):
            keys.append(key)
        return await real(self, key, *args, **kwargs)

    monkeypatch.setattr(zarr.storage.LocalStore, "get", get)
    return keys


def test_a_stack_over_the_budget_is_sampled_by_planes(tmp_path, capsys, chunk_reads):
    x = (phantom_3d((32, 128, 128), seed=3).noisy * 0.5).astype(np.float32)
    path = tmp_path / "stack.zarr"
    zarr.create_array(str(path), data=x, chunks=(1, 128, 128), dimension_names="zyx")
    chunk_reads.clear()
    assert main(["noise", str(path), "--max-pixels", str(x.size // 4), "--json"]) == 0
    assert len(chunk_reads) == 8  # a quarter of the 32 planes, evenly spaced
    nm = json.loads(capsys.readouterr().out)
    assert abs(nm["a"][0] - 0.5) < 0.05 and abs(nm["b"][0] - 1.0) < 0.1
    # within the budget the whole image is read: the estimate is the whole image's
    chunk_reads.clear()
    assert main(["noise", str(path), "--max-pixels", str(x.size), "--json"]) == 0
    assert len(chunk_reads) == 32


def test_a_plane_over_the_budget_is_sampled_by_tiles(tmp_path, chunk_reads):
    x = np.random.default_rng(0).normal(10, 1, (2, 512, 512)).astype(np.float32)  # CYX
    zarr.create_array(str(tmp_path / "p.zarr"), data=x, chunks=(1, 64, 64))
    arr = zarr.open_array(str(tmp_path / "p.zarr"), mode="r")
    chunk_reads.clear()
    sample = read_noise_sample(arr, "CYX", 256 * 256)
    assert sample.shape == (2, 1, 256, 256)  # one central tile per channel
    np.testing.assert_array_equal(sample[:, 0], x[:, 128:384, 128:384])
    assert len(chunk_reads) == 2 * 16  # of 2 * 64 chunks
    for h, w, budget in [(512, 512, 100_000), (100, 90_000, 50_000), (4000, 4000, 10**6)]:
        regions = sample_regions(h, w, budget)
        assert sum((r.stop - r.start) * (c.stop - c.start) for r, c in regions) <= budget
        assert all(0 <= r.start < r.stop <= h and 0 <= c.start < c.stop <= w
                   for r, c in regions)


def test_a_bad_budget_is_one_line(tmp_path, capsys):
    path = tmp_path / "p.npy"
    np.save(path, np.ones((32, 32), np.float32))
    assert main(["noise", str(path), "--max-pixels", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--max-pixels" in err
