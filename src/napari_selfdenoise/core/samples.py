"""Sample data: synthetic fluorescence phantoms with ground truth, and a bundled real crop.

The phantoms imitate a fluorescence image at Nyquist sampling: diffraction-limited puncta
(vesicles), curved filaments (microtubules) and dim cell bodies, blurred by a Gaussian
PSF (anisotropic in 3D), then measured with Poisson shot noise plus Gaussian read noise.
The clean image is returned as the ground truth in the same units (photo-electrons), so
PSNR can be computed directly, without rescaling. Everything is seeded and deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources

import numpy as np
from scipy import ndimage

LYSOSOME_FILE = "lysosome.tif"


@dataclass(frozen=True)
class Phantom:
    """A noisy synthetic image and its ground truth.

    Attributes
    ----------
    noisy : np.ndarray
        float32 measurement (photo-electrons), Poisson-Gaussian noise.
    clean : np.ndarray
        float32 expected signal in the same units (the ground truth).
    axes : str
        ``"YX"`` or ``"ZYX"``.
    photons : float
        Expected photo-electrons at the brightest structure.
    background : float
        Expected photo-electrons of the (uniform) background.
    read_noise : float
        Standard deviation of the Gaussian read noise.
    seed : int
        Seed that reproduces this phantom.
    """

    noisy: np.ndarray = field(repr=False)
    clean: np.ndarray = field(repr=False)
    axes: str
    photons: float
    background: float
    read_noise: float
    seed: int


def _splat(shape: tuple[int, ...], points: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Add ``weights`` at sub-pixel ``points`` (n, ndim) with linear interpolation."""
    out = np.zeros(shape, dtype=np.float64)
    base = np.floor(points).astype(np.int64)
    frac = points - base
    ndim = len(shape)
    for corner in np.ndindex(*(2,) * ndim):
        idx = base + np.array(corner)
        w = weights * np.prod(np.where(np.array(corner), frac, 1.0 - frac), axis=1)
        inside = np.all((idx >= 0) & (idx < np.array(shape)), axis=1)
        np.add.at(out, tuple(idx[inside].T), w[inside])
    return out


def _curve(rng: np.random.Generator, shape: tuple[int, ...], length: float) -> np.ndarray:
    """Points (0.5 px apart) of a smooth random curve; in 3D it stays near one plane."""
    ndim = len(shape)
    step = 0.5
    n = int(length / step)
    start = rng.uniform(0, 1, ndim) * np.array(shape)
    direction = rng.normal(size=ndim)
    if ndim == 3:
        direction[0] *= 0.15
    direction /= np.linalg.norm(direction)
    points = np.empty((n, ndim))
    position = start
    for i in range(n):
        points[i] = position
        turn = rng.normal(scale=0.04, size=ndim)
        if ndim == 3:
            turn[0] *= 0.3
        direction = direction + turn
        direction /= np.linalg.norm(direction)
        position = position + step * direction
    return points


def render_clean(
    shape: Sequence[int],
    *,
    seed: int = 0,
    psf_sigma: Sequence[float] | float = 1.2,
    blob_density: float = 9.0,
    filament_density: float = 1.8,
) -> np.ndarray:
    """Render a noise-free fluorescence phantom scaled to a maximum of 1.

    Parameters
    ----------
    shape : sequence of int
        ``(Y, X)`` or ``(Z, Y, X)``.
    seed : int
        Random seed (structures are placed at random).
    psf_sigma : float or sequence of float
        Gaussian PSF standard deviation in pixels, per axis or for all.
    blob_density, filament_density : float
        Puncta and filaments per 10,000 pixels of the YX plane.

    Returns
    -------
    np.ndarray
        float32 image in ``[0, 1]``.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3) or min(shape) < 4:
        raise ValueError(f"phantom shape must be 2D or 3D with every side >= 4, got {shape}")
    ndim = len(shape)
    rng = np.random.default_rng(seed)
    psf = np.broadcast_to(np.asarray(psf_sigma, dtype=float), (ndim,))
    if ndim == 3 and np.ndim(psf_sigma) == 0:
        psf = psf * np.array([2.5, 1.0, 1.0])  # axial blur of a confocal PSF
    area = shape[-1] * shape[-2] / 1e4
    depth = shape[0] / 8 if ndim == 3 else 1.0  # a 3D stack holds more structures
    dims = np.array(shape, dtype=float)
    image = np.zeros(shape, dtype=np.float64)

    # dim cell bodies: a few large smooth blobs at ~20% of the peak
    n_cells = max(2, round(area))
    cells = _splat(shape, rng.uniform(0.1, 0.9, (n_cells, ndim)) * dims,
                   rng.uniform(0.5, 1.0, n_cells))
    cells = ndimage.gaussian_filter(cells, sigma=[max(2.0, s / 6) for s in shape])
    image += 0.2 * cells / max(cells.max(), 1e-12)

    # filaments: unit line density, blurred by the PSF
    n_fil = max(1, round(filament_density * area * depth))
    fil = np.zeros(shape)
    for _ in range(n_fil):
        pts = _curve(rng, shape, rng.uniform(0.3, 1.0) * max(shape[-2:]))
        fil += _splat(shape, pts, np.full(len(pts), 0.5 * rng.uniform(0.4, 1.0)))
    fil = ndimage.gaussian_filter(fil, sigma=psf)
    image += 0.6 * fil / max(np.percentile(fil, 99.9), 1e-12)

    # puncta in three size classes (diffraction-limited to small vesicles)
    n_blobs = max(3, round(blob_density * area * depth))
    for scale in (1.0, 1.6, 2.4):
        count = n_blobs // 3
        blobs = _splat(shape, rng.uniform(0, 1, (count, ndim)) * dims,
                       rng.uniform(0.3, 1.0, count))
        sigma = psf * scale
        peak = (2 * np.pi) ** (ndim / 2) * np.prod(sigma)  # peak of a unit-weight Gaussian
        image += ndimage.gaussian_filter(blobs, sigma=sigma) * peak

    image /= image.max()
    return image.astype(np.float32)


def add_poisson_gaussian(
    clean: np.ndarray,
    *,
    photons: float,
    background: float = 2.0,
    read_noise: float = 2.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Measure ``clean`` (scaled to 0..1) with shot noise and read noise.

    Returns
    -------
    noisy, expected : np.ndarray
        float32 arrays in photo-electrons; ``expected = photons * clean + background``
        is the mean of ``noisy``.
    """
    if photons <= 0 or background < 0 or read_noise < 0:
        raise ValueError("photons must be > 0, background and read_noise >= 0")
    rng = np.random.default_rng(seed + 1)
    expected = photons * np.asarray(clean, dtype=np.float64) + background
    noisy = rng.poisson(expected) + rng.normal(0.0, read_noise, expected.shape)
    return noisy.astype(np.float32), expected.astype(np.float32)


def _phantom(shape: Sequence[int], axes: str, photons: float, background: float,
             read_noise: float, seed: int) -> Phantom:
    clean = render_clean(shape, seed=seed)
    noisy, expected = add_poisson_gaussian(
        clean, photons=photons, background=background, read_noise=read_noise, seed=seed
    )
    return Phantom(noisy, expected, axes, float(photons), float(background),
                   float(read_noise), int(seed))


def phantom_2d(
    shape: Sequence[int] = (256, 256),
    *,
    photons: float = 30.0,
    background: float = 2.0,
    read_noise: float = 2.0,
    seed: int = 0,
) -> Phantom:
    """A noisy 2D fluorescence phantom (axes ``YX``) with its ground truth.

    The defaults give a noisy PSNR of about 20 dB (low-light confocal).
    """
    if len(shape) != 2:
        raise ValueError(f"phantom_2d needs a (Y, X) shape, got {tuple(shape)}")
    return _phantom(shape, "YX", photons, background, read_noise, seed)


def phantom_3d(
    shape: Sequence[int] = (32, 128, 128),
    *,
    photons: float = 30.0,
    background: float = 2.0,
    read_noise: float = 2.0,
    seed: int = 0,
) -> Phantom:
    """A noisy 3D fluorescence phantom (axes ``ZYX``, axial PSF 2.5x wider)."""
    if len(shape) != 3:
        raise ValueError(f"phantom_3d needs a (Z, Y, X) shape, got {tuple(shape)}")
    return _phantom(shape, "ZYX", photons, background, read_noise, seed)


#: the default noise kernel of :func:`phantom_correlated`: binomial [1, 2, 1] x [1, 2, 1]
CORRELATION_KERNEL = np.outer([1.0, 2.0, 1.0], [1.0, 2.0, 1.0])


def correlate_noise(noisy: np.ndarray, expected: np.ndarray,
                    kernel: np.ndarray = CORRELATION_KERNEL) -> np.ndarray:
    """``expected`` plus the noise of ``noisy`` convolved (in YX) with ``kernel``.

    The kernel is scaled to unit energy (sum of squares 1), so each pixel keeps the
    noise variance of the uncorrelated measurement while neighbours become correlated
    (the [1, 2, 1] binomial kernel: correlation 0.67 between direct neighbours).
    """
    k = np.asarray(kernel, np.float64)
    k = k / np.sqrt((k**2).sum())
    k = k.reshape((1,) * (noisy.ndim - 2) + k.shape)
    noise = np.asarray(noisy, np.float64) - expected
    return (expected + ndimage.convolve(noise, k, mode="mirror")).astype(np.float32)


def phantom_correlated(
    shape: Sequence[int] = (256, 256),
    *,
    photons: float = 30.0,
    background: float = 2.0,
    read_noise: float = 2.0,
    kernel: np.ndarray = CORRELATION_KERNEL,
    seed: int = 0,
) -> Phantom:
    """A phantom with spatially correlated Poisson-Gaussian noise (2D ``YX`` or 3D ``ZYX``).

    The noise of :func:`phantom_2d` / :func:`phantom_3d` convolved in YX with ``kernel``
    (:func:`correlate_noise`): what sCMOS / EMCCD processing and demosaicing do, and what
    breaks blind-spot and masking methods (pixel shuffle is the remedy). Same seed, same
    image and noise; the ground truth is the expected signal.
    """
    if len(shape) not in (2, 3):
        raise ValueError(f"phantom_correlated needs a (Y, X) or (Z, Y, X) shape, got {tuple(shape)}")
    axes = "YX" if len(shape) == 2 else "ZYX"
    p = _phantom(shape, axes, photons, background, read_noise, seed)
    noisy = correlate_noise(p.noisy, p.clean.astype(np.float64), kernel)
    return Phantom(noisy, p.clean, axes, p.photons, p.background, p.read_noise, p.seed)


def psnr(reference: np.ndarray, estimate: np.ndarray,
         data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB.

    Parameters
    ----------
    reference, estimate : np.ndarray
        Same shape.
    data_range : float, optional
        Peak-to-peak range; defaults to ``reference.max() - reference.min()``.
    """
    reference = np.asarray(reference, dtype=np.float64)
    estimate = np.asarray(estimate, dtype=np.float64)
    if reference.shape != estimate.shape:
        raise ValueError(f"shapes differ: {reference.shape} vs {estimate.shape}")
    if data_range is None:
        data_range = float(reference.max() - reference.min())
    mse = float(np.mean((reference - estimate) ** 2))
    if mse == 0:
        return float("inf")
    return float(10 * np.log10(data_range**2 / mse))


def lysosome_path():
    """Path (a ``Traversable``) of the bundled real noisy confocal time-lapse crop."""
    return resources.files("napari_selfdenoise") / "data" / LYSOSOME_FILE


def load_lysosome() -> tuple[np.ndarray, str]:
    """The bundled real noisy confocal lysosome time-lapse (no ground truth).

    Returns
    -------
    data, axes : np.ndarray, str
        uint16 array of shape ``(10, 128, 128)`` and its axes ``"TYX"`` (read from the
        file's metadata). Source and MIT licence: ``data/ATTRIBUTION.md``.
    """
    import tifffile

    with resources.as_file(lysosome_path()) as path, tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        return series.asarray(), series.axes.upper()
