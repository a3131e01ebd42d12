"""``napari-selfdenoise train``: method choices and per-method flags come from the
registry; Noise2Noise from a target file or interlaced frames; DnCNN as a backbone."""

import numpy as np
import pytest

from napari_selfdenoise.cli import main
from napari_selfdenoise.core.bundle import ModelBundle
from napari_selfdenoise.core.methods import METHODS
from napari_selfdenoise.core.samples import phantom_2d

FAST = ["--patch", "16", "16", "--batch", "2", "--filters", "4", "--depth", "1",
        "--steps", "3", "--precision", "fp32", "--quiet"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_methods")
    ph = phantom_2d((48, 48), seed=3)
    np.save(d / "a.npy", ph.noisy)
    np.save(d / "b.npy", ph.noisy[::-1].copy())
    np.save(d / "stack.npy", np.stack([ph.noisy, ph.noisy[::-1]] * 2))
    return d


def test_help_lists_every_method_and_its_flags(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for name, method in METHODS.items():
        assert name in text
        for field in method.Params.model_fields:
            if field != "method":
                assert "--" + field.replace("_", "-") in text


def test_method_flags_reach_the_model(files, tmp_path):
    out = tmp_path / "m.sdmodel"
    assert main(["train", str(files / "a.npy"), "--method", "ne2ne", "--gamma", "1.5",
                 "--out", str(out), *FAST]) == 0
    assert ModelBundle.load(out).config.params.gamma == 1.5


def test_a_flag_of_another_method_is_refused(files, tmp_path, capsys):
    rc = main(["train", str(files / "a.npy"), "--method", "n2s", "--n-masks", "3",
               "--out", str(tmp_path / "m.sdmodel"), *FAST])
    assert rc == 2 and "--n-masks applies to method ams" in capsys.readouterr().err
    rc = main(["train", str(files / "a.npy"), "--method", "n2v2", "--network", "dncnn",
               "--out", str(tmp_path / "m.sdmodel"), *FAST])
    assert rc == 2 and "n2v2 trains unet" in capsys.readouterr().err


def test_noise2noise_from_a_target_file_or_interlaced_frames(files, tmp_path):
    out = tmp_path / "target.sdmodel"
    assert main(["train", str(files / "a.npy"), "--method", "n2n", "--target",
                 str(files / "b.npy"), "--out", str(out), *FAST]) == 0
    assert ModelBundle.load(out).method == "n2n"
    out = tmp_path / "pairs.sdmodel"
    assert main(["train", str(files / "stack.npy"), "--axes", "TYX", "--method", "n2n",
                 "--pairs-along", "T", "--out", str(out), *FAST]) == 0
    assert ModelBundle.load(out).config.params.pairs_along == "T"


def test_dncnn_backbone(files, tmp_path):
    out = tmp_path / "d.sdmodel"
    assert main(["train", str(files / "a.npy"), "--method", "ams", "--network", "dncnn",
                 "--dncnn-layers", "4", "--out", str(out), *FAST]) == 0
    cfg = ModelBundle.load(out).config
    assert cfg.network.arch == "dncnn" and cfg.network.dncnn_layers == 4


def test_bsn_noise_model_pixel_shuffle_and_r3(files, tmp_path, capsys):
    out = tmp_path / "bsn.sdmodel"
    fast = [a for a in FAST if a != "--quiet"]
    assert main(["train", str(files / "a.npy"), "--method", "bsn", "--noise-model", "gaussian",
                 "--pixel-shuffle", "2", "1", "--out", str(out), *fast]) == 0
    said = capsys.readouterr()
    assert "noise model (estimated, data units): var = " in said.out + said.err
    params = ModelBundle.load(out).config.params
    assert (params.noise_model, params.pixel_shuffle, params.pd_train, params.pd_infer) == (
        "gaussian", True, 2, 1)
    assert main(["train", str(files / "a.npy"), "--method", "ams", "--pixel-shuffle",
                 "--out", str(tmp_path / "ams.sdmodel"), *FAST]) == 0
    assert ModelBundle.load(tmp_path / "ams.sdmodel").config.params.factors() == (5, 2)
    with pytest.raises(SystemExit):  # argparse refuses one value of two
        main(["train", str(files / "a.npy"), "--method", "bsn", "--pixel-shuffle", "3",
              "--out", str(tmp_path / "x.sdmodel"), *FAST])
    den = tmp_path / "den.npy"
    assert main(["predict", str(out), str(files / "a.npy"), "--out", str(den), "--r3", "2",
                 "--quiet"]) == 0
    assert np.isfinite(np.load(den)).all()


def test_pixel_shuffle_auto_stores_the_chosen_factor(tmp_path, capsys):
    """``--pixel-shuffle auto [INFER]``: the training factor is the noise's correlation
    range plus one (3 on the 3 x 3 correlated phantom), announced, stored as a number."""
    from napari_selfdenoise.core.samples import phantom_correlated

    np.save(tmp_path / "c.npy", phantom_correlated((128, 128), seed=0).noisy)
    out = tmp_path / "auto.sdmodel"
    fast = [a for a in FAST if a != "--quiet"]
    assert main(["train", str(tmp_path / "c.npy"), "--method", "bsn", "--noise-model", "none",
                 "--pixel-shuffle", "auto", "1", "--out", str(out), *fast]) == 0
    said = capsys.readouterr()
    assert "pixel shuffle: training factor 3 (auto" in said.out + said.err
    assert ModelBundle.load(out).config.params.factors() == (3, 1)
    assert main(["train", str(tmp_path / "c.npy"), "--method", "ams", "--pixel-shuffle",
                 "--pd-train", "auto", "--out", str(tmp_path / "a.sdmodel"), *FAST]) == 0
    assert ModelBundle.load(tmp_path / "a.sdmodel").config.params.factors() == (3, 2)
    for bad in (["x", "2"], ["2", "auto"]):
        with pytest.raises(SystemExit):
            main(["train", str(tmp_path / "c.npy"), "--method", "bsn", "--pixel-shuffle",
                  *bad, "--out", str(tmp_path / "x.sdmodel"), *FAST])
    assert not (tmp_path / "x.sdmodel").exists()
