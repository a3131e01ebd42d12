"""The model description (rdf.yaml) built with bioimageio.spec's pydantic classes (0.5)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional


@dataclass
class PackageFiles:
    """Files written into the temporary package folder, and the numbers describing them."""

    folder: Path
    architecture: Path
    state_dict: Path
    torchscript: Path
    sdmodel: Path
    test_input: Path
    test_output: Path
    sample_input: Path
    sample_output: Path
    cover: Path
    readme: Path
    kwargs: dict
    halo: list[int]
    mins: list[int]
    step: int


def check_metadata(license: str, name: Optional[str]) -> None:
    """Raise a one-line ``UserError`` for a licence or name the spec refuses (before any
    work; pydantic's own message lists every SPDX identifier)."""
    from bioimageio.spec.model import v0_5 as s
    from pydantic import TypeAdapter, ValidationError

    from ..validation import UserError

    try:
        s.LicenseId(license)
    except ValidationError:
        raise UserError(f"--license {license!r} is not an SPDX licence identifier that "
                        "bioimage.io accepts (e.g. CC-BY-4.0, CC0-1.0, MIT, BSD-3-Clause)"
                        ) from None
    if name is None:
        return
    field = s.ModelDescr.model_fields["name"]
    try:
        TypeAdapter(Annotated[(field.annotation, *field.metadata)]).validate_python(name)
    except ValidationError as exc:
        why = exc.errors()[0]["msg"].replace("Value error, ", "")
        raise UserError(f"--name {name!r}: {why}") from None


def _axes(bundle: Any, files: PackageFiles, output: bool) -> list:
    from bioimageio.spec.model import v0_5 as s

    spatial = "zyx"[-bundle.spatial_dims:]
    axes: list = [s.BatchAxis(), s.ChannelAxis(channel_names=[
        s.Identifier(f"channel{c}") for c in range(bundle.n_channels)])]
    for a, h, m in zip(spatial, files.halo, files.mins):
        if output:
            axes.append(s.SpaceOutputAxisWithHalo(
                id=s.AxisId(a), halo=h,
                size=s.SizeReference(tensor_id=s.TensorId("input"), axis_id=s.AxisId(a))))
        else:
            axes.append(s.SpaceInputAxis(id=s.AxisId(a),
                                         size=s.ParameterizedSize(min=m, step=files.step)))
    return axes


def _scale(gain: list[float], offset: list[float]) -> list:
    """A channel-wise scale_linear step, or none when it would be the identity."""
    from bioimageio.spec.model import v0_5 as s

    if all(g == 1.0 for g in gain) and all(o == 0.0 for o in offset):
        return []
    return [s.ScaleLinearDescr(kwargs=s.ScaleLinearAlongAxisKwargs(
        axis=s.AxisId("channel"), gain=gain, offset=offset))]


def model_description(bundle: Any, files: PackageFiles, *, name: str, description: str,
                      authors: list[str], license: str, tags: list[str]) -> Any:
    """A :class:`bioimageio.spec.model.v0_5.ModelDescr` for the files in ``files``."""
    import torch
    from bioimageio.spec.model import v0_5 as s

    from ... import __version__
    from ..methods import get_method

    method = get_method(bundle.method)
    off = [float(v) for v in bundle.norm_offset]
    sc = [float(v) for v in bundle.norm_scale]
    pre = _scale([1.0 / v for v in sc], [-o / v for o, v in zip(off, sc)])
    post = _scale(sc, off)
    data = s.IntervalOrRatioDataDescr(type="float32")
    inp = s.InputTensorDescr(
        id=s.TensorId("input"), axes=_axes(bundle, files, False), data=data,
        test_tensor=s.FileDescr(source=files.test_input),
        sample_tensor=s.FileDescr(source=files.sample_input),
        description="noisy image (data units)", preprocessing=pre)
    out = s.OutputTensorDescr(
        id=s.TensorId("output"), axes=_axes(bundle, files, True), data=data,
        test_tensor=s.FileDescr(source=files.test_output),
        sample_tensor=s.FileDescr(source=files.sample_output),
        description="denoised image (data units)", postprocessing=post)
    torch_version = s.Version(torch.__version__.split("+")[0])
    weights = s.WeightsDescr(
        pytorch_state_dict=s.PytorchStateDictWeightsDescr(
            source=files.state_dict, pytorch_version=torch_version,
            architecture=s.ArchitectureFromFileDescr(
                source=files.architecture, callable=s.Identifier("selfdenoise_network"),
                kwargs=files.kwargs),
            comment=f"trained with napari-selfdenoise {__version__}"),
        torchscript=s.TorchscriptWeightsDescr(
            source=files.torchscript, pytorch_version=torch_version,
            parent="pytorch_state_dict", comment="traced from the pytorch_state_dict weights"),
    )
    cite = [s.CiteEntry(text=method.citation, url=s.HttpUrl(method.citation_url))]
    return s.ModelDescr(
        name=name, description=description,
        authors=[s.Author(name=a) for a in authors],
        cite=cite, license=s.LicenseId(license), tags=tags,
        documentation=s.FileDescr(source=files.readme), covers=[s.FileDescr(source=files.cover)],
        attachments=[s.FileDescr(source=files.sdmodel)],
        inputs=[inp], outputs=[out], weights=weights,
        config={"napari_selfdenoise": {
            "sdmodel": files.sdmodel.name, "method": bundle.method,
            "package_version": __version__}},
    )
