"""Export a :class:`~napari_selfdenoise.core.bundle.ModelBundle` as a bioimage.io package.

:func:`export_bioimageio` is a generator (``Message`` events, returns the written path):
it builds the package in a temporary folder, saves it with
``bioimageio.spec.save_bioimageio_package``, runs bioimageio.core's package test on the
zip, and only when that passes moves it onto the output path (atomically). A package
that fails its test is never written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Generator, Optional, Sequence

import numpy as np

from ..events import Message
from ..validation import UserError
from . import architecture, content
from .descr import PackageFiles, check_metadata, model_description

#: the model file attached to every package (napari-selfdenoise's lossless route back)
SDMODEL_NAME = "model.sdmodel"
DEFAULT_LICENSE = "CC-BY-4.0"


class PackageTestError(UserError):
    """The built package failed bioimageio.core's test: nothing was written."""


def inexpressible(bundle: Any) -> list[str]:
    """What napari-selfdenoise does with this model that a package cannot express."""
    from ..methods import get_method

    method = get_method(bundle.method)
    notes = []
    predictor = method.predictor(bundle.config)
    if predictor != "plain":
        notes.append(
            f"{method.title} models are applied by napari-selfdenoise with {predictor.replace('_', '-')} "
            f"passes ({method.n_subsets(bundle.config, bundle.spatial_dims)} masked passes "
            "combined); the package runs one plain pass instead")
    notes.append("test-time augmentation (8 flips / rotations, napari-selfdenoise's --tta) "
                 "and R3 refinement (--r3) are not in the package")
    return notes


def _net_and_checks(bundle: Any, net: Any, x: np.ndarray) -> tuple[dict, str, np.ndarray]:
    """The builder kwargs of ``net`` (``bundle``'s network), the architecture source and
    our test output, after proving that the generated architecture reproduces ``net``
    exactly."""
    import torch

    try:
        kwargs = architecture.network_kwargs(net)
    except architecture.UnsupportedNetworkError as exc:
        raise UserError(f"{bundle.method} model: {exc}") from None
    source = architecture.architecture_source()
    twin = architecture.load_architecture(source).selfdenoise_network(**kwargs)
    twin.load_state_dict(net.state_dict(), strict=True)
    twin.eval()
    with torch.no_grad():
        xt = torch.from_numpy(bundle.normalize(x, channel_axis=1))
        if not torch.equal(twin(xt), net(xt)):
            raise RuntimeError("the generated architecture does not reproduce the network")
    return kwargs, source, content.our_prediction(bundle, net, x)


#: how close the TorchScript trace must stay to the network (it may batch the BSN's
#: rotated branches differently from the eager network, which changes rounding)
TRACE_RTOL, TRACE_ATOL = 1e-5, 1e-6


def _distinct_sizes(x: Any, step: int) -> Any:
    """``x`` grown (replicate padding, by multiples of ``step``) until its spatial sizes
    all differ: a trace on it is valid for square and non-square inputs alike."""
    import torch.nn.functional as F

    sizes = list(x.shape[2:])
    for i in range(1, len(sizes)):
        while sizes[i] in sizes[:i]:
            sizes[i] += step
    pad: list[int] = []
    for have, want in zip(reversed(x.shape[2:]), reversed(sizes)):
        pad += [0, want - have]
    return F.pad(x, pad, mode="replicate")


def _torchscript(net: Any, x: np.ndarray, step: int, path: Path) -> None:
    """Trace ``net`` and check the trace on the test input and on other valid sizes."""
    import warnings

    import torch

    xt = torch.from_numpy(x)
    example = _distinct_sizes(xt, step)
    taller = [0, 0, 0, step] + [0, 0] * (xt.ndim - 4)  # Y grows: another aspect ratio
    others = [xt, torch.nn.functional.pad(xt, taller, mode="replicate")]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python values
        traced = torch.jit.trace(net, example)
        for other in others:
            if not torch.allclose(traced(other), net(other), rtol=TRACE_RTOL, atol=TRACE_ATOL):
                raise RuntimeError("the TorchScript trace does not generalise to other sizes")
    traced.save(str(path))


def _write_files(bundle: Any, folder: Path, sample: Optional[tuple[np.ndarray, str]],
                 sample_name: Optional[str], title: str) -> tuple[PackageFiles, list[str]]:
    import torch

    net = bundle.build_model()  # the one network: sizes, checks, weights and the trace
    step = int(getattr(net, "size_multiple", 1))
    halo, mins = content.size_rule(tuple(net.halo), step)
    shape = content.test_shape(mins, step, bundle.spatial_dims)
    x = (content.sample_input(bundle, sample[0], sample[1], shape) if sample is not None
         else content.synthetic_input(bundle, shape))
    kwargs, source, y = _net_and_checks(bundle, net, x)
    notes = inexpressible(bundle)
    f = PackageFiles(
        folder=folder, architecture=folder / architecture.FILE_NAME,
        state_dict=folder / "weights.pt", torchscript=folder / "weights_torchscript.pt",
        sdmodel=folder / SDMODEL_NAME, test_input=folder / "test_input.npy",
        test_output=folder / "test_output.npy", sample_input=folder / "sample_input.tif",
        sample_output=folder / "sample_output.tif", cover=folder / "cover.png",
        readme=folder / "README.md", kwargs=kwargs, halo=halo, mins=mins, step=step)
    f.architecture.write_text(source)
    torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, f.state_dict)
    _torchscript(net, bundle.normalize(x, channel_axis=1), step, f.torchscript)
    f.sdmodel.write_bytes(bundle.to_bytes())
    np.save(f.test_input, x)
    np.save(f.test_output, y)
    import tifffile

    tifffile.imwrite(f.sample_input, x[0])  # the same images for people (FAIR samples)
    tifffile.imwrite(f.sample_output, y[0])
    f.cover.write_bytes(content.cover_png(x, y))
    f.readme.write_text(content.readme(
        bundle, title=title, notes=notes, halo=halo, mins=mins, step=step,
        sdmodel_name=SDMODEL_NAME, sample=sample_name))
    return f, notes


def _first_failure(summary: Any) -> str:
    for d in getattr(summary, "details", []):
        if getattr(d, "status", "") == "failed":
            errs = getattr(d, "errors", []) or []
            why = str(errs[0].msg).strip().split("\n")[0] if errs else "failed"
            return f"{d.name}: {why}".strip()[:300]
    return "unknown failure"


def test_package(path: Path) -> Any:
    """Run bioimageio.core's test of the package ``path`` (every weight format, CPU)."""
    from bioimageio.core import test_model

    return test_model(str(path), devices=["cpu"])


def check_destination(out: str | os.PathLike, overwrite: bool) -> Path:
    """``out`` as a path, after checking it names a .zip that may be written."""
    out = Path(out)
    if out.suffix.lower() != ".zip":
        raise UserError(f"{out}: a bioimage.io package is a .zip file; name it {out.stem}.zip")
    if out.exists() and not overwrite:
        raise UserError(f"{out} exists; pass --overwrite (or choose another name)")
    if out.is_dir():
        raise UserError(f"{out} is a folder; give a .zip file name")
    return out


def export_bioimageio(
    bundle: Any, out: str | os.PathLike, *, sample: Optional[tuple[np.ndarray, str]] = None,
    sample_name: Optional[str] = None, authors: Sequence[str] = (),
    license: str = DEFAULT_LICENSE, name: Optional[str] = None,
    description: Optional[str] = None, overwrite: bool = False,
) -> Generator[Message, None, Path]:
    """Write ``bundle`` as a tested bioimage.io model package (zip) at ``out``.

    Parameters
    ----------
    bundle : ModelBundle
        The model (U-Net 2D / 3D incl. N2V2, DnCNN, the blind-spot network; with or
        without pixel shuffle).
    out : path
        The package, ending in ``.zip``; never written unless its test passes.
    sample : (array, axes), optional
        An image the test tensors are cropped from (default: a synthetic noisy image).
    authors, license, name, description :
        Package metadata (defaults: a generic author, CC-BY-4.0, derived from the model).
    overwrite : bool
        Replace an existing ``out``.

    Yields
    ------
    Message
        Progress and the parts of napari-selfdenoise's inference the package leaves out.
    """
    from . import require_bioimageio

    require_bioimageio()
    out = check_destination(out, overwrite)
    check_metadata(license, name)
    from ..methods import get_method

    method = get_method(bundle.method)
    dims = f"{bundle.spatial_dims}D"
    title = name or f"napari-selfdenoise {method.title} {dims} denoiser"
    with tempfile.TemporaryDirectory(prefix="sd-bioimageio-") as tmp:
        folder = Path(tmp)
        files, notes = _write_files(bundle, folder, sample, sample_name, title)
        for n in notes:
            yield Message(f"not in the package: {n}", level="warning")
        descr = model_description(
            bundle, files, name=title,
            description=description or f"Self-supervised {dims} denoising ({method.title}), "
            "exported from napari-selfdenoise.",
            authors=list(authors) or ["napari-selfdenoise user"], license=license,
            tags=["denoising", "self-supervised", bundle.method, dims.lower(),
                  "napari-selfdenoise", "pytorch"])
        from bioimageio.spec import save_bioimageio_package

        package = folder / "package.zip"
        save_bioimageio_package(descr, output_path=package)
        yield Message("testing the package with bioimageio.core …")
        summary = test_package(package)
        if summary.status != "passed":
            raise PackageTestError(f"the bioimage.io package failed its test ({_first_failure(summary)}); "
                                   f"nothing was written to {out}")
        out.parent.mkdir(parents=True, exist_ok=True)
        from ..io import temporary_sibling

        with temporary_sibling(out) as part:
            shutil.copyfile(package, part)
    yield Message(f"bioimage.io package written to {out} (test passed)")
    return out
