"""Why the posterior ``bsn`` trails its own prior mean at a short budget (issue #13).

Trains ``bsn`` (posterior, estimated Poisson-Gaussian noise) on one FMD image for a
CPU-time budget (one thread), then scores, without TTA: the posterior mean, the prior
mean ``mu`` alone, and the posterior with the noise variance scaled; and compares the
model's noise variance and prior variance with the true noise variance (noisy - ground
truth, the many-frame average) in the model's normalised units::

    python benchmarks/bsn_posterior_check.py --image BPAE_B --seconds 60 \
        --set 'params={"method":"bsn","nll_beta":0}'     # plain NLL (before beta-NLL)
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import tifffile
import torch

import quality_methods as qm
from machine import print_header
from napari_selfdenoise.core import posterior


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", default="BPAE_B")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON")
    args = ap.parse_args()
    torch.set_num_threads(1)
    qm.CPU_TIME = True
    print_header()
    extra = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    folder = qm.DATASETS["fmd"][0]
    noisy = tifffile.imread(folder / "noisy" / f"{args.image}.tif").astype(np.float32)
    gt = tifffile.imread(folder / "gt" / f"{args.image}.tif").astype(np.float32)
    out, bundle, _ = qm.run_method("bsn", noisy, args.seconds, extra)
    print(f"{args.image} {extra}: {bundle.info['steps']} steps; posterior (predict_array) "
          f"{qm.score(gt, out):.2f} dB")
    net = bundle.build_model()
    off, scale = bundle.norm_offset[0], bundle.norm_scale[0]
    y = torch.from_numpy((noisy - off) / scale)[None, None]
    with torch.no_grad():
        mu, var_x = posterior.prior(net.net(y).float(), 1)
        var_n = posterior.noise_variance(mu, net.noise_a, net.noise_b)
    true_n = float(np.var((noisy - gt) / scale))
    err_mu = float(((mu[0, 0].numpy() * scale + off - gt) ** 2).mean()) / scale**2
    print(f"normalised units: model var_n mean {var_n.mean():.4f} (true noise variance "
          f"{true_n:.4f}); prior var_x mean {var_x.mean():.4f} (mu's squared error vs "
          f"ground truth {err_mu:.4f})")
    rows = {"prior mean mu": mu}
    for f in (0.5, 1.0, 2.0, 4.0):
        rows[f"posterior, var_n x {f:g}"] = posterior.posterior_mean(y, mu, var_x, f * var_n)
    for name, t in rows.items():
        img = t[0, 0].numpy() * scale + off
        print(f"  {name:28s} {qm.score(gt, img):.2f} dB")


if __name__ == "__main__":
    main()
