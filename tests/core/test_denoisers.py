"""Classical denoisers: agreement with scipy / scikit-image, lattice evaluation, donut
J-invariance."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi
from skimage.morphology import ball, disk
from skimage.restoration import denoise_tv_chambolle

from napari_selfdenoise.core import denoisers as D
from napari_selfdenoise.core.denoisers.median import _network_median

RNG = np.random.default_rng(0)
IMG2 = RNG.random((37, 45)).astype(np.float32)
IMG3 = RNG.random((10, 21, 19)).astype(np.float32)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a)[None, None]


@pytest.mark.parametrize("img", [IMG2, IMG3], ids=["2d", "3d"])
def test_filters_match_scipy_and_skimage(img):
    x = _t(img)
    fp = disk if img.ndim == 2 else ball
    med = D.median(x, [1, 2])[0].numpy()
    for i, r in enumerate((1, 2)):
        np.testing.assert_array_equal(med[i], ndi.median_filter(img, footprint=fp(r),
                                                                mode="nearest"))
    gauss = D.gaussian(x, [0.7, 1.6])[0].numpy()
    for i, s in enumerate((0.7, 1.6)):
        np.testing.assert_allclose(gauss[i], ndi.gaussian_filter(img, s, mode="nearest"),
                                   atol=1e-6)
    box = D.mean(x, [2])[0, 0].numpy()
    np.testing.assert_allclose(box, ndi.uniform_filter(img, 5, mode="nearest"), atol=1e-6)
    tv = D.tv(x, [0.05, 0.3])[0].numpy()
    for i, w in enumerate((0.05, 0.3)):
        ref = denoise_tv_chambolle(img.astype(np.float64), weight=w)
        np.testing.assert_allclose(tv[i], ref, atol=1e-5)


@pytest.mark.parametrize("name", ["median", "mean", "gaussian", "bilateral"])
@pytest.mark.parametrize("img", [IMG2, IMG3], ids=["2d", "3d"])
def test_lattice_evaluation_equals_subsampled_full_output(name, img):
    den = D.DENOISERS[name]
    values = den.default_values(0.1, img.ndim)[:3]
    x = _t(img)
    offset = (1, 3, 2)[-img.ndim:]
    full = den(x, values)
    part = den(x, values, lattice=(offset, 4))
    sel = (slice(None), slice(None)) + tuple(slice(o, None, 4) for o in offset)
    assert part.shape == full[sel].shape
    torch.testing.assert_close(part, full[sel], rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["median", "mean"])
@pytest.mark.parametrize("img", [IMG2, IMG3], ids=["2d", "3d"])
def test_donut_filters_are_exactly_j_invariant(name, img):
    """Changing x at a pixel leaves the donut output there unchanged (not the plain one)."""
    den = D.DENOISERS[name]
    x = _t(img)
    centre = tuple(n // 2 for n in img.shape)
    y = x.clone()
    y[(0, 0) + centre] += 10.0
    for donut in (True, False):
        a = den(x, [1, 2], exclude_centre=donut)[(0, slice(None)) + centre]
        b = den(y, [1, 2], exclude_centre=donut)[(0, slice(None)) + centre]
        if donut:
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)  # (mean: float rounding)
        else:
            assert (a != b).any()
    # at every pixel at once: perturb the whole image on a sparse lattice
    z = x.clone()
    z[(slice(None), slice(None)) + (slice(3, None, 7),) * img.ndim] += 5.0
    a = den(x, [2], exclude_centre=True, lattice=((3,) * img.ndim, 7))
    b = den(z, [2], exclude_centre=True, lattice=((3,) * img.ndim, 7))
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_donut_median_is_the_mean_of_the_two_middle_values():
    x = torch.zeros((1, 1, 3, 3))
    x[0, 0] = torch.tensor([[1.0, 2.0, 3.0], [4.0, 100.0, 6.0], [7.0, 8.0, 9.0]])
    # radius 1 disk without centre: 2, 4, 6, 8 -> median 5
    assert D.median(x, [1], exclude_centre=True)[0, 0, 1, 1].item() == 5.0
    assert D.median(x, [1])[0, 0, 1, 1].item() == 6.0  # with the centre: 2, 4, 6, 8, 100


def test_bilateral_limits():
    x = _t(IMG2)
    wide = D.bilateral(x, [1e6])[0, 0]
    k = np.exp(-0.5 * np.arange(-3, 4) ** 2)
    ref = ndi.correlate(IMG2, np.outer(k, k) / np.outer(k, k).sum(), mode="nearest")
    np.testing.assert_allclose(wide.numpy(), ref, atol=1e-5)
    narrow = D.bilateral(x, [1e-5])[0, 0]
    np.testing.assert_allclose(narrow.numpy(), IMG2, atol=1e-5)


def test_wavelet_and_nlm():
    x = _t(IMG2)
    np.testing.assert_allclose(D.wavelet(x, [0.0])[0, 0].numpy(), IMG2, atol=1e-5)
    out = D.wavelet(x, [0.05, 0.5])[0].numpy()
    assert out[1].std() < out[0].std() < IMG2.std()
    smooth = D.nlm(x, [0.05, 0.5])[0].numpy()
    assert smooth.shape == (2,) + IMG2.shape and smooth[1].std() < smooth[0].std()
    assert D.wavelet(_t(IMG3), [0.1]).shape == (1, 1) + IMG3.shape
    assert D.nlm(_t(IMG3), [0.1]).shape == (1, 1) + IMG3.shape


def test_grids_and_errors():
    for den in D.DENOISERS.values():
        for nd in (2, 3):
            grid = den.default_values(0.1, nd)
            assert len(grid) >= 3 and all(v > 0 for v in grid) and grid == sorted(grid)
            assert den.halo(grid[-1], nd) >= 1
    # intensity parameters scale with the noise level, spatial ones do not
    assert D.DENOISERS["tv"].default_values(0.2, 2)[0] == pytest.approx(
        2 * D.DENOISERS["tv"].default_values(0.1, 2)[0], rel=1e-3)
    assert D.DENOISERS["median"].default_values(0.2, 2) == D.DENOISERS["median"].default_values(
        0.1, 2)
    x = _t(IMG2)
    with pytest.raises(ValueError, match="integers"):
        D.median(x, [1.5])
    with pytest.raises(ValueError, match="positive"):
        D.gaussian(x, [0.0])
    with pytest.raises(ValueError, match="no donut"):
        D.DENOISERS["tv"](x, [0.1], exclude_centre=True)
    with pytest.raises(ValueError, match="unknown denoiser"):
        D.get_denoiser("bm3d")
    assert D.get_denoiser("Median") is D.DENOISERS["median"]


def test_median_network_is_exact():
    gen = torch.Generator().manual_seed(0)
    for n in range(1, D.NETWORK_MEDIAN_MAX + 1):
        vals = [torch.randint(0, 5, (300,), generator=gen).float() for _ in range(n)]
        s = torch.stack(vals).sort(dim=0).values
        ref = s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])
        torch.testing.assert_close(_network_median(vals), ref, rtol=0, atol=0)
    assert len(D.median_network(13)) < 13 * 12 // 2  # fewer than a full bubble sort
    # windows larger than the network's limit are sorted
    big = D.median(_t(IMG3), [4])[0, 0].numpy()
    np.testing.assert_array_equal(big, ndi.median_filter(IMG3, footprint=ball(4), mode="nearest"))


def test_wavelet_levels_follow_the_largest_side():
    """A band cropped from an image is decomposed as deeply as the image (compare scores
    the band's crop and hands out the whole image's output), within the small side's
    maximum."""
    assert D.wavelet_levels((135, 512)) == D.wavelet_levels((512, 512)) == 3
    assert D.wavelet_levels((8, 135, 512)) == D.wavelet_levels((8, 512, 512))
    assert D.wavelet_levels((20, 4096)) == 1  # capped by the 20-pixel side
    assert D.wavelet_levels((8, 8)) == 1


def test_one_module_per_denoiser_and_the_registry_lists_them_all():
    """Every module of ``core/denoisers/`` but the shared ones defines exactly one
    :class:`Denoiser` (its ``DENOISER``, named as the module, whose function lives there),
    and :data:`DENOISERS` holds exactly those, each under its own name."""
    import importlib
    import pkgutil

    shared = {"base", "helpers"}
    found = {}
    for info in pkgutil.iter_modules(D.__path__):
        if info.name in shared:
            continue
        mod = importlib.import_module(f"{D.__name__}.{info.name}")
        entries = [v for v in vars(mod).values() if isinstance(v, D.Denoiser)]
        assert entries == [mod.DENOISER], info.name
        assert mod.DENOISER.name == info.name
        assert mod.DENOISER.fn.__module__ == mod.__name__
        found[info.name] = mod.DENOISER
    assert set(shared) <= {info.name for info in pkgutil.iter_modules(D.__path__)}
    assert found == D.DENOISERS
    assert all(name == d.name for name, d in D.DENOISERS.items())
    assert all(getattr(D, name) is d.fn for name, d in D.DENOISERS.items())  # re-exported
