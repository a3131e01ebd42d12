"""Compare (issue #14): one ranking for networks and filters, the winner handed back."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_selfdenoise.core import scoring
from napari_selfdenoise.core.calibration import denoise_image
from napari_selfdenoise.core.compare import compare, deliver
from napari_selfdenoise.core.config import CompareConfig, default_config
from napari_selfdenoise.core.events import CompareRanking, CompareTraining, run_to_end
from napari_selfdenoise.core.samples import phantom_2d
from napari_selfdenoise.core.training import train
from napari_selfdenoise.core.validation import UserError


@pytest.fixture(scope="module")
def compared():
    ph = phantom_2d((288, 96), seed=7)  # tall enough for two scoring bands
    seen: list = []
    cfg = CompareConfig(budget_s=6, clock="cpu", methods=["n2s"])
    res = run_to_end(compare(ph.noisy, cfg), seen.append)
    return ph, res, seen


def test_ranking_covers_every_candidate_sorted_by_delivered_estimate(compared):
    ph, res, seen = compared
    names = {r.name for r in res.ranking}
    assert {"n2s", "gaussian", "median", "tv", "nlm"} <= names
    errors = [r.best.mse for r in res.ranking]
    assert errors == sorted(errors)
    assert res.pick == res.ranking[0].name  # never a candidate estimated worse
    for r in res.ranking:  # filters hand out their scored (J-invariant) form
        if r.kind != "blend":  # the blend has no J-invariant form: one estimate
            assert (r.delivered is r.quality) == r.delivered_is_scored
    net = next(r for r in res.ranking if r.kind == "network")
    # the plain pass uses its own pixel: Stein's correction makes it differ from the
    # naive loss; it is estimated, not assumed equal to its J-invariant form, and the
    # network hands out whichever of the two is estimated better
    stein = net.plain if net.plain is not None else net.delivered
    assert stein is not net.quality and stein.score != net.quality.score
    assert net.best.mse == min(stein.mse, net.quality.mse)
    assert net.delivered_is_scored == (net.plain is not None)
    report = res.report()["candidates"]
    assert all("delivered_estimated_psnr" in c for c in report)
    rankings = [e for e in seen if isinstance(e, CompareRanking)]
    assert rankings and rankings[-1].pick == res.pick
    assert any(isinstance(e, CompareTraining) and e.candidate == "n2s" for e in seen)
    net = next(r for r in res.ranking if r.kind == "network")
    assert "grid-masked" in net.scored_as
    assert ("handed out in this form" in net.scored_as) == net.delivered_is_scored
    json.dumps(res.report())


def test_every_candidate_scored_on_the_same_region(compared):
    ph, res, _ = compared
    hold = res.holdout
    assert len(hold.bands) == 2 and tuple(res.region_rows) == hold.bands
    region, crops = hold.region(ph.noisy[None]), hold.crops(ph.noisy[None])
    assert region.shape == (2, hold.band_rows, 96)
    for r in res.ranking:
        assert r.quality.score == pytest.approx(scoring.score_of(region, res.region_outputs[r.name]))
        if r.kind == "filter":
            value = res.candidates[r.name][1]
            np.testing.assert_array_equal(
                res.region_outputs[r.name],
                hold.strip(scoring.invariant_filter(r.name, value, crops)))


def test_the_pick_is_what_is_returned(compared):
    ph, res, _ = compared
    assert res.image.shape == ph.noisy.shape
    if res.kind == "filter":  # its calibrated J-invariant output on the whole image
        expected = run_to_end(denoise_image(ph.noisy, res.pick, res.candidates[res.pick][1],
                                            j_invariant=True))
        np.testing.assert_array_equal(res.image, expected)
    elif res.kind == "network":
        assert res.bundle is res.candidates[res.pick]
    else:  # the blend: its network part's model (None when the blend dropped it)
        nets = [p for p in res.blend.parts if not isinstance(res.candidates[p], tuple)]
        assert res.bundle is (res.candidates[nets[0]] if nets else None)


def test_the_blend_is_ranked_and_handed_out_as_fitted(compared):
    """The Stein-weighted blend of the best network and the best filter is a candidate;
    when it is the pick, the image is its weighted sum of the parts' delivered outputs."""
    ph, res, _ = compared
    row = next(r for r in res.ranking if r.name == "blend")
    assert row.kind == "blend" and not row.delivered_is_scored
    assert set(res.blend.parts) <= {r.name for r in res.ranking}
    if res.pick != "blend":
        return
    parts = []
    invariant = {r.name: r.delivered_is_scored for r in res.ranking}
    for name in res.blend.parts:
        c = res.candidates[name]
        entry = ({"kind": "network", "bundle": c, "invariant": invariant[name]}
                 if not isinstance(c, tuple) else
                 {"kind": "filter", "name": c[0], "value": c[1]})
        parts.append(run_to_end(deliver(entry, ph.noisy, "YX", CompareConfig())))
    np.testing.assert_array_equal(res.image, res.blend.apply(parts))
    assert res.report()["blend"]["parts"] == list(res.blend.parts)


@pytest.mark.parametrize("method", ["ne2ne", "ams", "bsn", "n2v"])
def test_network_scoring_forms_are_j_invariant(method):
    """Whatever the method delivers, its score comes from a form in which no output pixel
    depends on its own input pixel."""
    ph = phantom_2d((64, 64), seed=1)
    cfg = default_config(method, steps=3, seed=0, val_fraction=0.0, precision="fp32",
                         patch_size=(32, 32), batch_size=2)
    bundle = run_to_end(train(ph.noisy, cfg))
    y = ph.noisy[None, :48, :48].copy()
    base = scoring.invariant_network(bundle, y)
    poked = y.copy()
    poked[0, 21, 26] += 50.0 * float(y.std())
    after = scoring.invariant_network(bundle, poked)
    assert after[0, 21, 26] == pytest.approx(base[0, 21, 26], abs=1e-4 * float(y.std()))
    assert not np.allclose(after, base)  # the poke does reach the other pixels


def test_a_stack_too_thin_for_the_filters_says_how_to_compare_without_them():
    from napari_selfdenoise.core.samples import phantom_3d

    ph = phantom_3d((4, 96, 64), seed=2)
    with pytest.raises(UserError, match="no-filters"):
        run_to_end(compare(ph.noisy, CompareConfig(budget_s=2, clock="cpu"), axes="ZYX"))


def test_bad_inputs_are_one_clear_error():
    with pytest.raises(UserError, match="one-channel"):
        run_to_end(compare(np.zeros((2, 128, 128), np.float32), axes="CYX"))
    with pytest.raises(UserError, match="pixels along Y"):
        run_to_end(compare(np.random.rand(64, 128).astype(np.float32)))
    with pytest.raises(UserError, match="second acquisition"):
        run_to_end(compare(np.random.rand(128, 128).astype(np.float32),
                           CompareConfig(methods=["n2n"])))


def test_a_3d_stack_is_compared_and_its_network_estimated_by_stein():
    from napari_selfdenoise.core.samples import phantom_3d

    ph = phantom_3d((8, 96, 64), seed=2)
    cfg = CompareConfig(budget_s=4, clock="cpu", filters=False)  # 3D filters: slow here
    res = run_to_end(compare(ph.noisy, cfg, axes="ZYX"))
    assert res.image.shape == ph.noisy.shape and res.pick == "n2s"
    net = res.ranking[0]
    stein = net.plain if net.plain is not None else net.delivered
    assert stein is not net.quality and np.isfinite(stein.psnr)
    assert stein.psnr != net.quality.psnr and res.blend is None


def test_a_candidates_curve_never_mixes_training_and_validation_losses():
    from napari_selfdenoise.core.compare_candidates import loss_curve

    mixed = [{"step": 5, "loss": 0.9, "val_loss": None}, {"step": 10, "loss": 0.8,
             "val_loss": 0.7}, {"step": 15, "loss": 0.6, "val_loss": None},
             {"step": 20, "loss": 0.5, "val_loss": 0.55}]
    assert loss_curve(mixed) == ((10, 0.7), (20, 0.55))
    no_val = [{"step": 5, "loss": 0.9, "val_loss": None}, {"step": 10, "loss": 0.8}]
    assert loss_curve(no_val) == ((5, 0.9), (10, 0.8))
