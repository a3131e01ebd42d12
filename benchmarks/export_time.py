"""Time of ``export --bioimageio`` for the default 2D and 3D models (issue #15).

Exports an untrained model with the method's default network (the time does not depend
on the weights; bioimageio is imported first, once) through :func:`~napari_selfdenoise.core.bioimageio.export.export_bioimageio`,
which builds the package and runs bioimageio.core's package test before writing it, then
runs that test once more on the written file to show its share of the total.

    python benchmarks/export_time.py [--dims 2 3] [--method n2v] [--cpu-time] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from napari_selfdenoise.core.bioimageio.export import export_bioimageio, test_package
from napari_selfdenoise.core.bundle import ModelBundle
from napari_selfdenoise.core.config import default_config
from napari_selfdenoise.core.events import run_to_end
from napari_selfdenoise.core.models import build_network
from machine import add_clock_options, apply_clock_options, print_header  # noqa: E402


def bundle_for(method: str, dims: int, depth: int | None, filters: int | None) -> ModelBundle:
    """An untrained model of ``method``'s default network (or ``depth`` / ``filters``)."""
    torch.manual_seed(0)
    cfg = default_config(method)
    net_cfg = cfg.network.model_copy(update={k: v for k, v in
                                             (("depth", depth), ("base_filters", filters))
                                             if v is not None})
    cfg = cfg.model_copy(update={"network": net_cfg})
    net = build_network(cfg.network, dims, 1, method, cfg.params)
    return ModelBundle(config=cfg, axes="ZYX"[-dims:], spatial_dims=dims, n_channels=1,
                       norm_offset=[100.0], norm_scale=[20.0], state_dict=net.state_dict())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_clock_options(parser, "times")
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 3], choices=[2, 3])
    parser.add_argument("--method", default="n2v")
    parser.add_argument("--depth", type=int, default=None, help="U-Net depth (default: the method's)")
    parser.add_argument("--filters", type=int, default=None, help="base filters (default: the method's)")
    parser.add_argument("--json", action="store_true", help="one JSON line per model")
    args = parser.parse_args()
    clock = apply_clock_options(args)
    print_header("fp32")
    t0 = clock()
    import bioimageio.core  # noqa: F401 - once per process, not part of each export
    import bioimageio.spec  # noqa: F401

    print(f"importing bioimageio.core / spec: {clock() - t0:.1f} s (once per process)")
    for dims in args.dims:
        bundle = bundle_for(args.method, dims, args.depth, args.filters)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "model.zip"
            t0 = clock()
            run_to_end(export_bioimageio(bundle, out))
            total = clock() - t0
            t0 = clock()
            status = test_package(out).status
            test = clock() - t0
            size = out.stat().st_size
        net = bundle.config.network
        row = {"dims": dims, "method": args.method, "depth": net.depth,
               "base_filters": net.base_filters, "export_s": round(total, 2),
               "package_test_s": round(test, 2), "test_status": status,
               "package_bytes": size}
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            print(f"{dims}D {args.method} (depth {net.depth}, {net.base_filters} filters): "
                  f"export {total:.1f} s, of which the package test ~{test:.1f} s "
                  f"({status}); package {size / 1e6:.2f} MB", flush=True)


if __name__ == "__main__":
    main()
