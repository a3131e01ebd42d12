"""What a posterior step can add to a blind mean (issue #13, docs/benchmarks.md section 7).

Issue #13 asks the posterior blind-spot network (``bsn``) to beat Noise2Self by 0.5 dB.
The posterior's output is its blind (prior) mean ``mu`` combined with the noisy pixel
``y`` by ``core.posterior.posterior_mean`` (Gaussian prior x Gaussian noise). So its gain
can come from two places: a better blind mean, or the combination with ``y``. This
separates them. For every chosen method, trained ``--seconds`` (60 CPU-s by default) on
each noisy image alone, it reports (PSNR after CSBDeep ``norm_minmse``, as section 7; no
TTA, so every column is one pass of the same weights):

* ``delivered``: what the method hands out (Noise2Self: its plain pass, which sees its own
  pixel; ``bsn``: its posterior mean);
* ``blind``: its blind mean (Noise2Self: the grid-masked J-invariant form; ``bsn``: the
  prior mean of its blind-spot output), ``core.scoring.invariant_network``;
* ``oracle w``: that blind mean combined with ``y`` by the posterior, with the prior
  variance taken **from the truth** (the squared error of the blind mean against the
  clean image, averaged over w x w pixels) and the noise variance from the noise model
  estimated on the image (``a * mu + b``). A network's learned variance cannot know the
  error better than this, so ``oracle 3`` bounds what any posterior step adds to this
  blind mean (``oracle 1``, the exact per-pixel error, is not a bound a network could
  reach: it knows each pixel's error).

The clean image is mapped to the noisy frame by a 3 x 3 least-squares kernel
(``fmd_truth_check.mapped_truth``: the FMD averages are half a pixel off their frames).

Usage::

    python benchmarks/posterior_bound.py --cpu-time --datasets fmd w2s \
        --images BPAE_B BPAE_R 010_0 --methods n2s bsn --json bound.jsonl
"""

from __future__ import annotations

import json
import os

import numpy as np
import torch
from scipy import ndimage

import quality_methods as qm  # (benchmarks/ is on sys.path)
from fmd_truth_check import mapped_truth
from napari_selfdenoise.core.inference import predict_array
from napari_selfdenoise.core.noise_model import estimate_noise_model
from napari_selfdenoise.core.posterior import posterior_mean
from napari_selfdenoise.core.scoring import invariant_network

#: windows (pixels) over which the truth's squared error becomes the oracle prior variance
WINDOWS = (1, 3, 7)


def oracle_posterior(y: np.ndarray, blind: np.ndarray, clean: np.ndarray,
                     noise_var: np.ndarray, window: int) -> np.ndarray:
    """``posterior_mean(y, blind, var_x, noise_var)`` with ``var_x`` the squared error of
    ``blind`` against ``clean`` averaged over ``window`` x ``window`` pixels."""
    var_x = ndimage.uniform_filter((blind - clean) ** 2, window, mode="reflect")
    out = posterior_mean(*(torch.from_numpy(np.asarray(a, np.float64))
                           for a in (y, blind, var_x, np.maximum(noise_var, 1e-12))))
    return out.numpy()


def forms(bundle, noisy: np.ndarray, clean: np.ndarray) -> dict[str, np.ndarray]:
    """A trained model's delivered output, blind mean and oracle posteriors (data units)."""
    y = noisy.astype(np.float64)
    delivered = predict_array(bundle, noisy, axes="YX", tta=False).astype(np.float64)
    blind = invariant_network(bundle, noisy[None])[0].astype(np.float64)
    noise_var = estimate_noise_model(noisy).variance(blind)
    out = {"delivered": delivered, "blind": blind}
    for w in WINDOWS:
        out[f"oracle {w}"] = oracle_posterior(y, blind, clean, noise_var, w)
    return out


def main() -> None:
    ap = qm.script_parser(__doc__, 60.0, "training budget per run (seconds)")
    ap.add_argument("--methods", nargs="+", default=["n2s", "bsn"],
                    choices=sorted(qm.METHODS), help="single-image methods to train")
    args = ap.parse_args()
    extra = qm.start(args, tta=False)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"{args.seconds:g} {'CPU' if args.cpu_time else 'wall'} s per run, no TTA")
    columns = ["delivered", "blind"] + [f"oracle {w}" for w in WINDOWS]
    print("\n| data | image | method | steps | " + " | ".join(columns) + " |")
    print("|---|---|---|---|" + "---|" * len(columns))
    for dataset, name, noisy, gt in qm.images(args):
        clean = mapped_truth(noisy, gt, 1)[0]
        for method in args.methods:
            _, bundle, s = qm.run_method(method, noisy, args.seconds, extra, predict=False)
            got = {k: qm.score(gt, v) for k, v in forms(bundle, noisy, clean).items()}
            steps = int(bundle.info["steps"])
            print(f"| {dataset} | {name} | {method} | {steps} | "
                  + " | ".join(f"{got[c]:.2f}" for c in columns) + " |", flush=True)
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps({"dataset": dataset, "image": name, "method": method,
                                        "steps": steps, "train_s": s, "seconds": args.seconds,
                                        "cpu_time": args.cpu_time,
                                        "load_avg": os.getloadavg()[0], **got}) + "\n")


if __name__ == "__main__":
    main()
