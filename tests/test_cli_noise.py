"""``napari-selfdenoise noise`` prints the estimated noise model; ``train`` prints it too."""

import json

import tifffile

from napari_selfdenoise.cli import main
from napari_selfdenoise.core.samples import phantom_3d


def test_noise_command(tmp_path, capsys):
    path = tmp_path / "p.tif"
    tifffile.imwrite(path, phantom_3d((16, 128, 128), seed=3).noisy * 0.5)
    assert main(["noise", str(path), "--axes", "ZYX", "--json"]) == 0
    nm = json.loads(capsys.readouterr().out)
    assert abs(nm["a"][0] - 0.5) < 0.05 and abs(nm["b"][0] - 1.0) < 0.1
    assert main(["noise", str(path), "--axes", "ZYX"]) == 0
    assert capsys.readouterr().out.startswith("noise model: var = ")
