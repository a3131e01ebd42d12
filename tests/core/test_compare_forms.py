"""Compare (issue #14): a network hands out its plain pass or its J-invariant form,
whichever is estimated better, and what it hands out is that form."""

from __future__ import annotations

import numpy as np
import pytest

from napari_selfdenoise.core import scoring
from napari_selfdenoise.core.compare import INVARIANT_NOTE, _blend, _rank, deliver
from napari_selfdenoise.core.config import CompareConfig, PredictConfig, default_config
from napari_selfdenoise.core.events import run_to_end
from napari_selfdenoise.core.inference import predict
from napari_selfdenoise.core.samples import phantom_2d
from napari_selfdenoise.core.training import train


@pytest.fixture(scope="module")
def model():
    ph = phantom_2d((96, 96), seed=3)
    cfg = default_config("n2s", steps=20, seed=0, val_fraction=0.0, precision="fp32",
                         patch_size=(32, 32), batch_size=4)
    return ph, run_to_end(train(ph.noisy, cfg))


def _found(ph, bundle, div_scale: float, invertible: bool = True) -> tuple:
    """A network candidate (J-invariant form, plain pass, a divergence map scaled by
    ``div_scale``) and the calibrated Gaussian, on the phantom's top 64 rows."""
    y = ph.noisy[None, :64].astype(np.float32)
    jinv = scoring.invariant_network(bundle, y)
    plain = run_to_end(predict(bundle, y[0], axes="YX",
                               config=PredictConfig(tta=False, j_invariant=False)))[None]
    gauss = scoring.invariant_filter("gaussian", 1.0, y)
    found = {
        "n2s": {"name": "n2s", "kind": "network", "detail": "", "scored_as": "grid-masked",
                "same": False, "invertible": invertible, "out": jinv, "delivered": plain,
                "div": np.full(y.shape, div_scale, np.float64), "bundle": bundle,
                "seconds": 0.0, "curve": ()},
        "gaussian": {"name": "gaussian", "kind": "filter", "detail": "", "same": True,
                     "scored_as": "calibrated J-invariant form", "out": gauss,
                     "value": 1.0, "seconds": 0.0, "curve": ()},
    }
    for c in found.values():  # as compare's ranking does before each _rank
        c["score"] = scoring.score_of(y, c["out"])
    return y, found


def _net(rows):
    return next(r for r in rows if r.kind == "network")


def test_the_j_invariant_form_is_handed_out_when_the_plain_pass_is_estimated_worse(model):
    ph, bundle = model
    y, found = _found(ph, bundle, div_scale=0.9)  # Stein: a plain pass copying its pixel
    rows, _, _ = _rank(y, found, scoring.data_range(ph.noisy))
    net = _net(rows)
    assert net.plain is not None and net.plain.mse > net.quality.mse
    assert net.delivered is net.quality and net.delivered_is_scored
    assert net.scored_as.endswith(INVARIANT_NOTE)
    assert net.to_dict()["plain_pass_estimated_psnr"] == net.plain.psnr
    # the blend takes the form the network hands out: its J-invariant output
    mix, row, out = _blend(y, found, rows, scoring.data_range(ph.noisy))
    parts = {"n2s": found["n2s"]["out"], "gaussian": found["gaussian"]["out"]}
    np.testing.assert_array_equal(out, mix.apply([parts[p] for p in mix.parts]))


def test_the_plain_pass_is_handed_out_when_it_is_estimated_better(model):
    ph, bundle = model
    y, found = _found(ph, bundle, div_scale=0.0)  # no own-pixel slope: its loss as is
    rows, _, _ = _rank(y, found, scoring.data_range(ph.noisy))
    net = _net(rows)
    assert net.plain is None and not net.delivered_is_scored
    assert net.delivered is not net.quality and net.delivered.mse < net.quality.mse
    assert INVARIANT_NOTE not in net.scored_as


def test_a_form_predict_cannot_produce_is_never_chosen(model):
    ph, bundle = model
    y, found = _found(ph, bundle, div_scale=0.9, invertible=False)
    net = _net(_rank(y, found, scoring.data_range(ph.noisy))[0])
    assert net.plain is None and not net.delivered_is_scored
    assert net.delivered.mse > net.quality.mse  # worse, but the only form it has


def test_deliver_hands_out_exactly_the_j_invariant_form(model):
    """On the whole image: the model's J-invariant predictor without TTA, in which no
    output pixel depends on its own input (fp32, exact)."""
    ph, bundle = model
    entry = {"kind": "network", "bundle": bundle, "same": False, "invariant": True}
    cfg = CompareConfig(tta=True)
    out = run_to_end(deliver(entry, ph.noisy, "YX", cfg))
    expected = run_to_end(predict(bundle, ph.noisy, axes="YX",
                                  config=PredictConfig(tta=False, j_invariant=True)))
    np.testing.assert_array_equal(out, expected)
    poked = ph.noisy.copy()
    poked[40, 50] += 30.0 * float(ph.noisy.std())
    after = run_to_end(deliver(entry, poked, "YX", cfg))
    assert after[40, 50] == out[40, 50]
    assert not np.array_equal(after, out)  # the poke reaches its neighbours
    plain = run_to_end(deliver(dict(entry, invariant=False), ph.noisy, "YX", cfg))
    assert not np.array_equal(plain, out)


def test_the_report_says_which_network_is_handed_out_in_its_j_invariant_form(model):
    from napari_selfdenoise.core.ranking import CompareResult

    ph, bundle = model
    y, found = _found(ph, bundle, div_scale=0.9)
    rows, var, rho = _rank(y, found, scoring.data_range(ph.noisy))
    res = CompareResult("n2s", "network", None, rows, var, rho, None, bundle)
    report = res.report()
    assert report["j_invariant_networks"] == ["n2s"]
    assert "n2s handed out in its J-invariant form" in report["summary"]
    y, found = _found(ph, bundle, div_scale=0.0)
    rows, var, rho = _rank(y, found, scoring.data_range(ph.noisy))
    report = CompareResult("n2s", "network", None, rows, var, rho, None, bundle).report()
    assert report["j_invariant_networks"] == [] and "J-invariant" not in report["summary"]


def test_a_network_scored_as_it_predicts_is_handed_out_without_tta(model):
    """A network whose own predictor is the J-invariant form it is scored through (here
    n2s predicting J-invariantly; ``ams``'s masks alike) was scored without TTA, so with
    ``tta=True`` it is still handed out without it: what is handed out was scored."""
    import dataclasses

    ph, plain_bundle = model
    bundle = dataclasses.replace(plain_bundle, config=plain_bundle.config.model_copy(
        update={"j_invariant_inference": True}))
    assert scoring.scored_as(bundle)[1]  # delivered_is_scored: compare's "same"
    entry = {"kind": "network", "bundle": bundle, "same": True, "invariant": True}
    out = run_to_end(deliver(entry, ph.noisy, "YX", CompareConfig(tta=True)))
    expected = run_to_end(predict(bundle, ph.noisy, axes="YX",
                                  config=PredictConfig(tta=False)))
    np.testing.assert_array_equal(out, expected)
    tta = run_to_end(predict(bundle, ph.noisy, axes="YX", config=PredictConfig(tta=True)))
    assert not np.array_equal(out, tta)
