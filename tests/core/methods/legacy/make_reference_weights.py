"""Write ``reference_weights.npz``: the weights the pre-refactor code (commit 487bee2) trains
in the cases of ``test_legacy_unchanged.py`` (fp32, one thread), with its best step and loss.

Run it with the OLD code on the path, e.g.::

    git worktree add /tmp/legacy 487bee2
    PYTHONPATH=/tmp/legacy/src python tests/core/methods/legacy/make_reference_weights.py OUT.npz

Why weights and not only digests: the digests in ``reference_digests.json`` were recorded
on an AVX-512 CPU, and fp32 convolutions sum in another order on an AVX2-only CPU (other
oneDNN kernels), so bit-identity holds only on the CPU kind the references come from.
The test compares with the digests where they match and otherwise with these weights,
within a tolerance far below any change of the algorithm (a different mask or seed moves
the weights by 1e-2 and more).
"""

import sys

import numpy as np
import torch

from napari_selfdenoise.core.events import run_to_end
from napari_selfdenoise.core.samples import phantom_2d, phantom_3d
from napari_selfdenoise.core.training import default_config, train

CASES = {  # test_legacy_unchanged.py runs these cases too
    "n2v": ("n2v", {}),
    "n2v_struct_axis_struct_span": ("n2v", {"masking": {"struct_axis": "x", "struct_span": 3}}),
    "n2v2": ("n2v2", {}),
    "n2s": ("n2s", {}),
    "n2s_replacement": ("n2s", {"masking": {"replacement": "zero"}}),
    "n2same": ("n2same", {}),
}


def main(out: str) -> None:
    torch.set_num_threads(1)
    arrays = {}
    for key, (method, extra) in CASES.items():
        cfg = default_config(method, steps=6, batch_size=4, patch_size=(16, 16),
                             precision="fp32", seed=5, val_every=3, log_every=2,
                             network={"base_filters": 4, "depth": 1}, **extra)
        bundle = run_to_end(train(phantom_2d((48, 48), seed=3).noisy, cfg))
        arrays[f"{key}/best_step"] = np.array(bundle.info["best_step"])
        arrays[f"{key}/best_loss"] = np.array(bundle.info["best_loss"])
        for name, t in bundle.state_dict.items():
            arrays[f"{key}/{name}"] = t.cpu().numpy()
    cfg = default_config("n2s", steps=4, batch_size=2, patch_size=(8, 16, 16), precision="fp32",
                         seed=1, val_every=2, network={"base_filters": 4, "depth": 1})
    bundle = run_to_end(train(phantom_3d((16, 32, 32), seed=2).noisy, cfg, axes="ZYX"))
    for name, t in bundle.state_dict.items():
        arrays[f"n2s_3d/{name}"] = t.cpu().numpy()
    np.savez_compressed(out, **arrays)


if __name__ == "__main__":
    main(sys.argv[1])
