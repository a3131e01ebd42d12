"""Stein's correction at low photon counts: which per-pixel variance map? (issue #14)

A phantom at ``PHOTONS`` photons (argv 1) with Poisson (``poisson``) or Gaussian noise of
the same per-pixel variance (``gauss``) (argv 2); n2s trained 60 CPU-s on the top 80 %;
the plain pass's estimate on the bottom band with several variance maps for the
``2 v_i div_i`` term, against the truth. Usage::

    PYTHONPATH=src python benchmarks/sure_variance_check.py 10 poisson
"""
import sys
import numpy as np, torch
torch.set_num_threads(1)
from napari_selfdenoise.core import scoring, sure
from napari_selfdenoise.core.config import default_config
from napari_selfdenoise.core.events import run_to_end
from napari_selfdenoise.core.training import train
from napari_selfdenoise.core.samples import render_clean, add_poisson_gaussian
photons = float(sys.argv[1]); kind = sys.argv[2]
clean = render_clean((512, 512), seed=0)
noisy, expected = add_poisson_gaussian(clean, photons=photons, background=1.0, read_noise=0.5, seed=1)
if kind == "gauss":  # same per-pixel variance, Gaussian
    rng = np.random.default_rng(2)
    var = np.maximum(expected, 0) + 0.25  # a=1 (photo-electrons), read 0.5^2
    noisy = (expected + rng.normal(size=expected.shape) * np.sqrt(var)).astype(np.float32)
y0 = 512 - 103
cfg = default_config("n2s", steps=10**9, seed=0, time_budget_s=60, clock="cpu")
bundle = run_to_end(train(noisy[:y0], cfg, axes="YX"))
crop = noisy[None, y0 - 32:].astype(np.float32)
out, div = sure.network_delivered(bundle, crop, "YX")
out, div = out[:, 32:], div[:, 32:]
jinv = scoring.invariant_network(bundle, crop)[:, 32:]
y = noisy[None, y0:].astype(np.float32); x = expected[None, y0:].astype(np.float64)
peak = scoring.data_range(noisy)
t = lambda f: 10*np.log10(peak**2/np.mean((f[...,1:-1,1:-1]-x[...,1:-1,1:-1])**2))
q = scoring.estimate_quality(y, out, jinv, peak, divergence=div)
qj = scoring.estimate_quality(y, jinv, jinv, peak)
print(f"{kind} photons {photons}: mean counts {expected.mean():.2f}; plain true {t(out):.2f} est {q.psnr:.2f} ({q.psnr - t(out):+.2f}) | "
      f"jinv true {t(jinv):.2f} est {qj.psnr:.2f} ({qj.psnr - t(jinv):+.2f}) | plain-jinv true {t(out)-t(jinv):+.2f} est {q.psnr-qj.psnr:+.2f} | div {div.mean():.3f}", flush=True)
from napari_selfdenoise.core.noise_model import RESIDUAL_GAIN
from napari_selfdenoise.core.sure import local_variance
ry, rr = scoring.residual(y), scoring.residual(jinv)
pv = (ry**2 - rr**2) / RESIDUAL_GAIN
I = (Ellipsis, slice(1, -1), slice(1, -1))
base = (out[I] - y[I])**2 - pv
vtrue = (np.maximum(x, 0) + 0.25)[I]
from napari_selfdenoise.core.noise_model import estimate_noise_model
nm = estimate_noise_model(noisy)
vmodel = np.maximum(nm.a[0] * jinv + nm.b[0], 0)[I]
p = lambda m: 10*np.log10(peak**2/m)
for label, v in [("true v", vtrue), ("window 9", local_variance(pv)), ("window 3", local_variance(pv, 3)), ("model a*ref+b", vmodel), ("constant mean", np.full_like(vtrue, pv.mean()))]:
    print(f"   {label:14s} est {p(np.mean(base + 2*v*div[I])):.2f} (true {t(out):.2f})", flush=True)
