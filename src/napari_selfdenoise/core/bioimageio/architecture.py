"""The self-contained architecture file of an exported package, made from ``core/models``.

A bioimage.io ``pytorch_state_dict`` entry names a Python file and a callable that builds
the network. That file must import nothing but torch, so it is *generated* at export time
from the source of the classes in :mod:`napari_selfdenoise.core.models` and
:mod:`napari_selfdenoise.core.pixel_shuffle` (cut out with :mod:`ast`, never copied by
hand), followed by a small builder. It cannot drift from our networks: the export checks
that the generated network gives exactly our network's output before writing anything,
and tests/core/test_bioimageio_architecture.py proves it for every network we ship.

:data:`ARCHITECTURES` maps each network class we can export to the function giving the
builder's keyword arguments; a network of another class (the BSN's posterior denoiser,
for example) is refused with one line.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import types
from typing import Any, Callable

#: the callable the package names (``weights.pytorch_state_dict.architecture.callable``)
CALLABLE = "selfdenoise_network"
#: file name of the architecture inside the package
FILE_NAME = "selfdenoise_architecture.py"

#: (module, top-level names) cut into the architecture file, in dependency order
_SOURCES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("napari_selfdenoise.core.models.layers",
     ("conv", "batch_norm", "DenoisingNet", "ConvBlock", "MaxPool", "MaxBlurPool", "Upsample")),
    ("napari_selfdenoise.core.models.unet", ("UNet",)),
    ("napari_selfdenoise.core.models.dncnn", ("DnCNN",)),
    ("napari_selfdenoise.core.pixel_shuffle", ("shuffle_down", "shuffle_up", "PixelShuffled")),
)

_HEADER = '''"""Denoising network of a napari-selfdenoise model (generated; imports only torch).

Generated from napari-selfdenoise's core/models at export time. Build the network with
``{callable}(**kwargs)`` using the kwargs in the package's rdf.yaml.
"""

import torch
import torch.nn.functional as F
from torch import nn

'''

_BUILDER = '''

NETWORKS = {"UNet": UNet, "DnCNN": DnCNN}


def selfdenoise_network(network, spatial_dims, in_channels, pixel_shuffle=0, **kwargs):
    """The network ``network`` ("UNet" or "DnCNN") with ``kwargs``; ``pixel_shuffle`` > 0
    runs it on pixel-shuffled sub-images of that factor (its weights under ``inner.``)."""
    net = NETWORKS[network](spatial_dims, in_channels, **kwargs)
    return PixelShuffled(net, pixel_shuffle) if pixel_shuffle else net
'''


def _definitions(module_name: str, names: tuple[str, ...]) -> list[str]:
    """Source of the top-level definitions ``names`` of ``module_name``, in file order."""
    module = importlib.import_module(module_name)
    source = inspect.getsource(module)
    tree = ast.parse(source)
    found = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in names:
            found[node.name] = ast.get_source_segment(source, node)
    missing = [n for n in names if n not in found]
    if missing:  # a renamed class: fail loudly at export, never write a broken file
        raise RuntimeError(f"{module_name} no longer defines {missing}")
    return [found[n] for n in names]


def architecture_source() -> str:
    """The text of the architecture file (deterministic for one version of the package)."""
    parts = [_HEADER.format(callable=CALLABLE)]
    for module_name, names in _SOURCES:
        parts += [d + "\n\n" for d in _definitions(module_name, names)]
    text = "\n".join(parts).rstrip() + "\n" + _BUILDER
    check_imports_only_torch(text)
    return text


def imported_modules(source: str) -> set[str]:
    """Top-level names of every module ``source`` imports (``import`` and ``from``)."""
    mods: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            mods |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            mods.add("." if node.level else (node.module or "").split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__":
            mods.add("__import__")
    return mods


def check_imports_only_torch(source: str) -> None:
    """Raise ``RuntimeError`` when ``source`` imports anything but torch."""
    other = imported_modules(source) - {"torch"}
    if other:
        raise RuntimeError(f"the architecture file would import {sorted(other)}")


def load_architecture(source: str) -> types.ModuleType:
    """Execute an architecture file *we generated* as a module (never one from a package)."""
    module = types.ModuleType("selfdenoise_architecture")
    exec(compile(source, FILE_NAME, "exec"), module.__dict__)  # noqa: S102 - our own text
    return module


# ------------------------------------------------------------------- keyword arguments
def _unet_kwargs(net: Any) -> dict:
    first = net.down[0][0]
    return {"network": "UNet", "depth": int(net.depth), "base_filters": int(first.out_channels),
            "batch_norm": first.bias is None, "n2v2": bool(net.n2v2),
            "residual": bool(net.residual)}


def _dncnn_kwargs(net: Any) -> dict:
    convs = [m for m in net.body if hasattr(m, "kernel_size")]
    return {"network": "DnCNN", "layers": len(convs) + 2,
            "filters": int(net.first[0].out_channels), "batch_norm": convs[0].bias is None,
            "residual": bool(net.residual)}


#: network class name -> its builder kwargs read from a built network
ARCHITECTURES: dict[str, Callable[[Any], dict]] = {
    "UNet": _unet_kwargs,
    "DnCNN": _dncnn_kwargs,
}


class UnsupportedNetworkError(ValueError):
    """A network with no exportable architecture."""


def network_kwargs(net: Any) -> dict:
    """The builder's keyword arguments that rebuild ``net`` (a built, eval-mode network).

    Raises
    ------
    UnsupportedNetworkError
        For a network class not in :data:`ARCHITECTURES`.
    """
    inner, factor = net, 0
    if type(net).__name__ == "PixelShuffled":
        inner, factor = net.inner, int(net.factor)
    name = type(inner).__name__
    if name not in ARCHITECTURES:
        raise UnsupportedNetworkError(
            f"a {name} network cannot be exported to bioimage.io (exportable: "
            f"{', '.join(ARCHITECTURES)})")
    kwargs = {"spatial_dims": int(inner.spatial_dims),
              "in_channels": int(_in_channels(inner)), **ARCHITECTURES[name](inner)}
    if factor:
        kwargs["pixel_shuffle"] = factor
    return kwargs


def _in_channels(net: Any) -> int:
    for m in net.modules():
        if hasattr(m, "in_channels"):
            return int(m.in_channels)
    raise UnsupportedNetworkError("network has no convolution")
