"""The comparable score and the estimated quality (issue #14), on phantoms with ground truth."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from napari_selfdenoise.core import scoring
from napari_selfdenoise.core.masking import interpolate_neighbours
from napari_selfdenoise.core.samples import phantom_2d, phantom_3d, psnr


def _filters(y: np.ndarray) -> dict[str, np.ndarray]:
    """J-invariant outputs of denoisers of clearly different quality."""
    return {
        "gaussian 0.6": scoring.invariant_filter("gaussian", 0.6, y),
        "gaussian 1.4": scoring.invariant_filter("gaussian", 1.4, y),
        "gaussian 3": scoring.invariant_filter("gaussian", 3.0, y),
        "gaussian 5": scoring.invariant_filter("gaussian", 5.0, y),
        "median 2": scoring.invariant_filter("median", 2, y),
        "identity": scoring.invariant_function(lambda a: a, y),
    }


@pytest.fixture(scope="module")
def scored():
    ph = phantom_2d((192, 192), seed=4)
    y, x = ph.noisy[None], ph.clean[None]
    outs = _filters(y)
    ref = min(outs.values(), key=lambda o: scoring.score_of(y, o))
    return y, x, outs, ref, scoring.data_range(ph.noisy)


def test_order_by_score_is_order_by_true_mse(scored):
    y, x, outs, _, _ = scored
    names = list(outs)
    checked = 0
    for a, b in itertools.combinations(names, 2):
        fa, fb = outs[a].astype(np.float64), outs[b].astype(np.float64)
        # the score's noise for this pair: block standard error of the paired difference
        diff = (fa - y) ** 2 - (fb - y) ** 2
        noise = scoring._block_se(diff)
        true_gap = np.mean((fa - x) ** 2) - np.mean((fb - x) ** 2)
        if abs(true_gap) <= 3 * noise:
            continue
        checked += 1
        score_gap = scoring.score_of(y, fa) - scoring.score_of(y, fb)
        assert np.sign(score_gap) == np.sign(true_gap), (a, b, score_gap, true_gap)
    assert checked >= 10  # the set really is spread out


def test_estimated_psnr_within_half_a_db(scored):
    y, x, outs, ref, peak = scored
    for name, out in outs.items():
        q = scoring.estimate_quality(y, out, ref, peak)
        true = psnr(x, out, data_range=peak)
        assert abs(q.psnr - true) < 0.5, (name, q.psnr, true)
        assert q.psnr_low <= q.psnr <= q.psnr_high
        assert q.mse == pytest.approx(q.score - q.noise_variance, rel=0.2, abs=0.05)


def test_estimated_psnr_3d_phantom():
    ph = phantom_3d((8, 96, 96), seed=2)
    y, x = ph.noisy[None], ph.clean[None]
    outs = {s: scoring.invariant_filter("gaussian", s, y) for s in (0.8, 1.5)}
    ref = min(outs.values(), key=lambda o: scoring.score_of(y, o))
    peak = scoring.data_range(ph.noisy)
    for s, out in outs.items():
        q = scoring.estimate_quality(y, out, ref, peak)
        assert abs(q.psnr - psnr(x, out, data_range=peak)) < 0.5, s


def test_identity_is_scored_through_its_j_invariant_form(scored):
    """Never the raw output: the identity would score 0; its J-invariant form is the
    neighbour interpolation, and scores as a poor denoiser (above the noise variance)."""
    y, x, outs, _, _ = scored
    ident = outs["identity"]
    assert scoring.score_of(y, y) == 0.0  # what scoring the raw function would give
    interp = interpolate_neighbours(torch.from_numpy(y)[:, None])[:, 0].numpy()
    np.testing.assert_array_equal(ident, interp)
    true_var = float(np.mean((y.astype(np.float64) - x) ** 2))
    assert scoring.score_of(y, ident) > true_var


def test_j_invariant_forms_do_not_see_their_own_pixel():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(1, 32, 32)).astype(np.float32)
    for out_of in (lambda a: scoring.invariant_function(lambda b: b * 2.0 + 1.0, a),
                   lambda a: scoring.invariant_filter("gaussian", 1.0, a)):
        base = out_of(y)
        poked = y.copy()
        poked[0, 13, 17] += 100.0
        changed = out_of(poked)
        assert changed[0, 13, 17] == base[0, 13, 17]
