"""The self-contained architecture file of an exported package, made from ``core/models``.

A bioimage.io ``pytorch_state_dict`` entry names a Python file and a callable that builds
the network. That file must import nothing but torch, so it is *generated* at export time
from the source of our network classes (:mod:`napari_selfdenoise.core.models`, the pixel
shuffle and the BSN's posterior), cut out of their modules with :mod:`ast` (type
annotations dropped, never copied by hand), followed by a small builder. It cannot drift
from our networks: the export checks that the generated network gives exactly our
network's output before writing anything, and tests/core/test_bioimageio_architecture.py
proves it for every registered method and network family.

:data:`ARCHITECTURES` maps each network class we can export to the function giving the
builder's keyword arguments; a network of another class is refused with one line.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import types
from typing import Any, Callable, Optional

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
    ("napari_selfdenoise.core.posterior",
     ("MIN_VARIANCE", "prior", "noise_variance", "nll", "posterior_mean")),
    ("napari_selfdenoise.core.models.bsn",
     ("shift_down", "PADDINGS", "ShiftConv", "ShiftPool", "_act", "HalfPlaneUNet",
      "rotate_views", "BlindSpotNet")),
    ("napari_selfdenoise.core.models.bsn_denoiser", ("_PriorMean", "BSNDenoiser")),
)
#: modules our code uses by attribute (``posterior.prior``): their functions are in the
#: file, so ``posterior.prior`` becomes ``prior``
_FLATTENED = frozenset({"posterior"})

_HEADER = '''"""Denoising network of a napari-selfdenoise model (generated; imports only torch).

Generated from napari-selfdenoise's core/models at export time (type annotations
removed). Build the network with ``{callable}(**kwargs)`` using the kwargs in the
package's rdf.yaml.
"""

import torch
import torch.nn.functional as F
from torch import nn

'''

_BUILDER = '''

NETWORKS = {"UNet": UNet, "DnCNN": DnCNN, "BSNDenoiser": BSNDenoiser}


def selfdenoise_network(network, spatial_dims, in_channels, pixel_shuffle=0, **kwargs):
    """The network ``network`` (a key of NETWORKS) with ``kwargs``; ``pixel_shuffle`` > 0
    runs it on pixel-shuffled sub-images of that factor (its weights under ``inner.``)."""
    net = NETWORKS[network](spatial_dims, in_channels, **kwargs)
    return PixelShuffled(net, pixel_shuffle) if pixel_shuffle else net
'''


class _Standalone(ast.NodeTransformer):
    """Drops type annotations (they name typing helpers the file does not import) and
    turns ``posterior.name`` into ``name``."""

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:  # noqa: N802 - ast API
        node.returns = None
        for a in node.args.args + node.args.kwonlyargs + node.args.posonlyargs:
            a.annotation = None
        for a in (node.args.vararg, node.args.kwarg):
            if a is not None:
                a.annotation = None
        self.generic_visit(node)
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> Any:  # noqa: N802 - ast API
        if node.value is None:
            return None  # a class attribute declared for type checkers only
        return ast.copy_location(ast.Assign(targets=[node.target], value=node.value), node)

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:  # noqa: N802 - ast API
        self.generic_visit(node)
        if isinstance(node.value, ast.Name) and node.value.id in _FLATTENED:
            return ast.copy_location(ast.Name(id=node.attr, ctx=node.ctx), node)
        return node


def _node_name(node: ast.stmt) -> Optional[str]:
    if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
        return node.name
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(
            node.targets[0], ast.Name):
        return node.targets[0].id
    return None


def _definitions(module_name: str, names: tuple[str, ...]) -> list[str]:
    """Source of the top-level definitions ``names`` of ``module_name``, standalone."""
    module = importlib.import_module(module_name)
    tree = ast.parse(inspect.getsource(module))
    found = {}
    for node in tree.body:
        name = _node_name(node)
        if name in names:
            found[name] = ast.unparse(ast.fix_missing_locations(_Standalone().visit(node)))
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
    # keyword form: ``n2v2`` here is UNet's argument, not a method name
    return dict(network="UNet", depth=int(net.depth), base_filters=int(first.out_channels),
                batch_norm=first.bias is None, n2v2=bool(net.n2v2), residual=bool(net.residual))


def _dncnn_kwargs(net: Any) -> dict:
    convs = [m for m in net.body if hasattr(m, "kernel_size")]
    return {"network": "DnCNN", "layers": len(convs) + 2,
            "filters": int(net.first[0].out_channels), "batch_norm": convs[0].bias is None,
            "residual": bool(net.residual)}


def _bsn_kwargs(net: Any) -> dict:
    branch = net.net.branch
    return {"network": "BSNDenoiser", "depth": int(branch.depth),
            "filters": int(branch.enc[0][0].conv.out_channels),
            "noise_model": str(net.noise_model), "pd_infer": int(net.pd_infer),
            "separate_z": net.net.z_branch is not None,
            "padding": str(net.net.padding)}


#: network class name -> its builder kwargs read from a built network
ARCHITECTURES: dict[str, Callable[[Any], dict]] = {
    "UNet": _unet_kwargs,
    "DnCNN": _dncnn_kwargs,
    "BSNDenoiser": _bsn_kwargs,
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
    channels = getattr(inner, "channels", None) or _in_channels(inner)
    kwargs = {"spatial_dims": int(inner.spatial_dims), "in_channels": int(channels),
              **ARCHITECTURES[name](inner)}
    if factor:
        kwargs["pixel_shuffle"] = factor
    return kwargs


def _in_channels(net: Any) -> int:
    for m in net.modules():
        if hasattr(m, "in_channels"):
            return int(m.in_channels)
    raise UnsupportedNetworkError("network has no convolution")
