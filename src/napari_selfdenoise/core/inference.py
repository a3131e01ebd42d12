"""Tiled, blended, streamed inference on images of any size.

:func:`predict` maps the model's axes onto the data's, cuts every sample (2D models: each
S/T/Z plane; 3D models: each S/T volume) into aligned tiles with enough context to cover
the receptive field (:mod:`.tiling`), runs them in batches and cross-fades neighbouring
tiles, so the result equals running the network on the whole image. A reader thread
prefetches tiles (pinned memory, non-blocking copies on CUDA) and a writer thread stitches
and writes finished chunks while the device computes, so memory does not grow with the
stack. Output goes to numpy, a zarr store (chunked like the tiles, resumable) or a BigTIFF.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import queue
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generator, Optional

import numpy as np

from . import io, outputs, resume, validation
from .axes import AxesError, validate_axes
from .bundle import ModelBundle
from .config import PredictConfig, default_patch_size
from .events import Message, PredictStarted, TileDone, run_to_end
from .methods import get_method
from .provenance import make_provenance
from .tiling import (
    AxisPlan, TilePlan, make_plan, read_reflected, reflect_index, round_up,
)

PROGRESS_KEY = "napari_selfdenoise_progress"
_CPU_BUDGET_CAP = 1.25 * 1024**3
_LIVE_FRACTION = 0.35  # peak live activations / sum of all layer outputs (measured, U-Net)
_PIPELINE_BYTES = 32.0  # per voxel: tiles queued for compute and for writing
_MAX_BATCH_VOXELS = {"cpu": 4 * 1024**2, "cuda": 64 * 1024**2}
# Largest tile side per spatial rank and device. On a CPU larger tiles do not run faster
# (and the budget keeps 3D tiles near 117^3 anyway). On a GPU a 3D tile pays for 2 x 32
# context voxels per axis: at 160^3 only (160 - 80)^3 / 160^3 = 1/8 of the computed voxels
# are output, at 256^3 a third, so GPUs get larger 3D tiles when their memory allows.
_MAX_TILE = {"cpu": {2: 1536, 3: 160}, "cuda": {2: 1536, 3: 256}}
_MIN_TILE = {2: 96, 3: 48}


# ------------------------------------------------------------------ axes mapping
@dataclass(frozen=True)
class Layout:
    """How the model's axes map onto the data's.

    ``sample_letters`` (in data order) are iterated; ``spatial`` (``"YX"`` or ``"ZYX"``)
    is tiled; ``C`` (if present) is fed jointly to the network.
    """

    axes: str
    shape: tuple[int, ...]
    spatial: str
    sample_letters: str

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(self.shape[self.axes.index(a)] for a in self.spatial)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.shape[self.axes.index(a)] for a in self.sample_letters)

    @property
    def n_samples(self) -> int:
        return math.prod(self.sample_shape)

    @property
    def block_letters(self) -> str:
        """Letters left after indexing one sample, in data order (C and spatial)."""
        return "".join(a for a in self.axes if a not in self.sample_letters)

    def sample_index(self, s: int) -> dict[str, int]:
        idx = np.unravel_index(s, self.sample_shape) if self.sample_letters else ()
        return {a: int(i) for a, i in zip(self.sample_letters, idx)}


def map_axes(bundle: ModelBundle, axes: str, shape: tuple[int, ...]) -> Layout:
    """Map a model onto data with ``axes`` and ``shape`` (clear errors on mismatches)."""
    axes = validate_axes(axes, shape)
    n_c = shape[axes.index("C")] if "C" in axes else 1
    if n_c != bundle.n_channels:
        raise AxesError(
            f"the model was trained on {bundle.n_channels} channel(s) but the data has {n_c} "
            f"(axes {axes!r}, shape {tuple(shape)}); "
            + ("give the channel axis as C in axes" if "C" not in axes else
               "split or select channels to match the model")
        )
    if bundle.spatial_dims == 3:
        if "Z" not in axes:
            raise AxesError(
                f"this is a 3D model (trained on {bundle.axes!r}) but the data has no Z axis "
                f"(axes {axes!r}); use a 2D model, or give axes with Z if the data is a volume"
            )
        spatial = "ZYX"
    else:
        spatial = "YX"
    samples = "".join(a for a in axes if a not in spatial and a != "C")
    return Layout(axes, tuple(int(s) for s in shape), spatial, samples)


# ------------------------------------------------------------------ network helpers
def fold_batch_norm(net: Any) -> Any:
    """A copy of ``net`` with every Conv -> BatchNorm pair (eval) folded into the conv."""
    import torch
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    net = copy.deepcopy(net)
    convs = (torch.nn.Conv2d, torch.nn.Conv3d)
    norms = (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)
    for mod in net.modules():
        if isinstance(mod, torch.nn.Sequential):
            for i in range(len(mod) - 1):
                if isinstance(mod[i], convs) and isinstance(mod[i + 1], norms):
                    mod[i] = fuse_conv_bn_eval(mod[i], mod[i + 1])
                    mod[i + 1] = torch.nn.Identity()
    return net.eval()


def _conv_profile(net: Any, spatial_dims: int, in_channels: int) -> tuple[float, float]:
    """(conv FLOPs, activation floats) per input voxel, from one small forward pass."""
    import torch

    side = 4 * int(getattr(net, "size_multiple", 1))
    x = torch.zeros((1, in_channels) + (side,) * spatial_dims)
    flops = [0.0]
    floats = [0.0]

    def hook(mod, inp, out):
        if isinstance(out, torch.Tensor):
            floats[0] += out.numel()
        if isinstance(mod, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)):
            k = math.prod(mod.kernel_size)
            flops[0] += 2.0 * out.numel() * (mod.in_channels // mod.groups) * k
            if mod.bias is not None:
                flops[0] += out.numel()

    leaves = [m for m in net.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.inference_mode():
            net(x)
    finally:
        for h in handles:
            h.remove()
    vox = side**spatial_dims
    return flops[0] / vox, floats[0] / vox


def flops_per_voxel(net: Any, spatial_dims: int, in_channels: int = 1) -> float:
    """Convolution FLOPs (2 per multiply-add, plus bias adds) per input voxel of ``net``.

    Exact for fully convolutional networks whose every ``nn.ConvNd`` output scales with
    the input (the U-Net and DnCNN here); elementwise ops (BN, ReLU, pooling) excluded.
    """
    return _conv_profile(net, spatial_dims, in_channels)[0]


def memory_budget(device: Any, config: PredictConfig) -> float:
    """Bytes available for one batch: config, else free CUDA memory or available RAM."""
    if config.memory_budget_mb:
        return float(config.memory_budget_mb) * 1024**2
    if device.type == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        return 0.6 * free
    import psutil

    return min(0.25 * psutil.virtual_memory().available, _CPU_BUDGET_CAP)


def bytes_per_voxel(net: Any, spatial_dims: int, in_channels: int, j_invariant: bool) -> float:
    """Estimated peak host/device bytes per tile voxel while a batch is in flight."""
    live = 4.0 * _conv_profile(net, spatial_dims, in_channels)[1] * _LIVE_FRACTION
    if j_invariant:
        live += 8.0 * in_channels  # masked input and the assembled output
    return live + _PIPELINE_BYTES * in_channels


def batch_size(tile_voxels: int, cost: float, budget: float, device_type: str) -> int:
    """Tiles per batch: as many as fit in ``budget`` (large batches do not help on CPU)."""
    cap = _MAX_BATCH_VOXELS.get(device_type, _MAX_BATCH_VOXELS["cpu"]) // max(tile_voxels, 1)
    return int(max(1, min(16, cap, budget // (cost * tile_voxels))))


def auto_tile(cost: float, budget: float, shape: tuple[int, ...], context: tuple[int, ...],
              multiple: int = 1, border: Optional[tuple[int, ...]] = None,
              device_type: str = "cpu") -> tuple[int, ...]:
    """Largest tile (context included) whose batch of one fits in ``budget``, fitted to
    the data.

    An axis whose whole length plus border is shorter than an even share of the voxels
    gets exactly that (a 16-plane volume is not tiled as if it were a cube), and the other
    axes share the rest equally. The tile holds at most ``_MAX_TILE[device][d] ** d``
    voxels and at least ``_MIN_TILE[d]`` per tiled axis.
    """
    nd = len(shape)
    m = max(1, int(multiple))
    cap = _MAX_TILE.get(device_type, _MAX_TILE["cpu"])[nd]
    voxels = min(budget / cost, float(cap) ** nd)
    # one tile covering the axis: its length and the reflected border on both sides
    border = context if border is None else border
    whole = [round_up(n, m) + 2 * min(round_up(b, m), round_up(c, m))
             for n, b, c in zip(shape, border, context)]
    tile = [0] * nd
    free = list(range(nd))
    side = 0.0
    while free:
        fixed = math.prod(tile[i] for i in range(nd) if i not in free)
        side = (voxels / fixed) ** (1.0 / len(free))
        fits = [i for i in free if whole[i] <= side]
        if not fits:
            break
        for i in fits:
            tile[i] = whole[i]
            free.remove(i)
    for i in free:
        tile[i] = max(_MIN_TILE[nd], int(side))
    return tuple(tile)


# ---------------------------------------------------------------------- outputs
class _Sink:
    """Receives finished chunks ``(C, *spatial)`` and puts them into the output."""

    def __init__(self, layout: Layout, n_chunks: int):
        self.layout = layout
        self.done = np.zeros(n_chunks, dtype=bool)
        self.nonfinite = 0  # NaN pixels written (input NaN / Inf, see validation)
        self.count_nan = False
        self._has_c = "C" in layout.axes
        # canonical ([C], spatial) -> data order of the block letters
        letters = ("C" if self._has_c else "") + layout.spatial
        self._perm = [letters.index(a) for a in layout.block_letters]

    def index(self, sample: int, spatial: tuple[slice, ...]) -> tuple:
        values = dict(self.layout.sample_index(sample))
        values.update(zip(self.layout.spatial, spatial))
        values["C"] = slice(None)
        return tuple(values[a] for a in self.layout.axes)

    def to_data_order(self, block: np.ndarray) -> np.ndarray:
        return np.transpose(block if self._has_c else block[0], self._perm)

    def _out(self, block: np.ndarray) -> np.ndarray:
        """The block in data order, counting its NaN pixels (non-finite input pixels)."""
        arr = self.to_data_order(block)
        if self.count_nan:
            self.nonfinite += int(np.count_nonzero(np.isnan(arr)))
        return arr

    def write(self, sample: int, spatial: tuple[slice, ...], block: np.ndarray) -> None:
        raise NotImplementedError

    def record(self, final: bool = False) -> None:
        """Persist which chunks are done (resumable outputs)."""

    def finish(self, complete: bool) -> Any:
        raise NotImplementedError


class _ArraySink(_Sink):
    def __init__(self, layout: Layout, n_chunks: int, array: Optional[np.ndarray] = None):
        super().__init__(layout, n_chunks)
        self.array = array if array is not None else np.full(layout.shape, np.nan, np.float32)

    def write(self, sample, spatial, block):
        self.array[self.index(sample, spatial)] = self._out(block)

    def finish(self, complete):
        return self.array


class _NpySink(_ArraySink):
    """A ``.npy`` file written through a memory map, renamed into place when complete."""

    def __init__(self, layout, n_chunks, path: Path):
        self.path = path
        self.tmp = path.with_name(f".{path.name}.part")
        arr = np.lib.format.open_memmap(self.tmp, mode="w+", dtype=np.float32, shape=layout.shape)
        try:  # a full disk fails here, not later with a bus error in the memory map
            with open(self.tmp, "r+b") as fh:
                outputs.reserve(fh.fileno(), os.path.getsize(self.tmp), path)
        except BaseException:
            del arr
            os.unlink(self.tmp)
            raise
        super().__init__(layout, n_chunks, arr)

    def finish(self, complete):
        self.array.flush()
        del self.array
        if complete:
            os.replace(self.tmp, self.path)
            return self.path
        os.unlink(self.tmp)
        return None


class _ZarrSink(_Sink):
    """A zarr v3 store chunked like the tiles; finished chunks recorded in its attributes."""

    def __init__(self, layout, plan: TilePlan, path: Path, document: dict, signature: str,
                 overwrite: bool, input_id: Optional[dict] = None):
        import zarr

        n_chunks = layout.n_samples * plan.n_tiles
        super().__init__(layout, n_chunks)
        self.path = path
        self.signature = signature
        self.input_id = input_id
        self._last_record = 0.0
        self._plan_record = [[a.length, a.stride, a.context, a.blend, a.border, a.multiple]
                             for a in plan.axes]
        existing = _read_progress(path)
        if existing is not None and existing.get("signature") == signature and not overwrite:
            if input_id is not None:
                resume.check_same_input(existing.get("input"), input_id, path)
            self.array = zarr.open_array(str(path), mode="r+")
            self.done[:] = _unpack_bits(existing["done"], n_chunks)
            self.resumed = True
            return
        if path.exists():
            if not overwrite:
                why = ("it was written with other settings or another model"
                       if existing is not None else "it is not a resumable prediction")
                raise FileExistsError(
                    f"{path} exists and {why}; pass overwrite=True (--overwrite) to replace it"
                )
            if path.is_dir() and not io.is_zarr_path(path):
                raise outputs.OutputError(f"{path} is a folder that is not a zarr store; it "
                                          "is never replaced: choose another output")
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        chunks = []
        for a, s in zip(layout.axes, layout.shape):
            if a in layout.spatial:
                chunks.append(plan.chunk_shape[layout.spatial.index(a)])
            elif a == "C":
                chunks.append(s)
            else:
                chunks.append(1)
        attrs = {io.DOC_KEY: document, PROGRESS_KEY: self._progress()}
        path.parent.mkdir(parents=True, exist_ok=True)
        self.array = zarr.create_array(
            str(path), shape=layout.shape, dtype="float32", chunks=tuple(chunks),
            fill_value=float("nan"), attributes=attrs, dimension_names=tuple(layout.axes),
        )
        self.resumed = False

    def _progress(self, complete: bool = False) -> dict:
        return {"signature": self.signature, "done": _pack_bits(self.done),
                "complete": complete, "plan": self._plan_record, "input": self.input_id}

    def write(self, sample, spatial, block):
        self.array[self.index(sample, spatial)] = self._out(block)

    def record(self, final=False):
        now = time.monotonic()
        if not final and now - self._last_record < 2.0:
            return
        self._last_record = now
        self.array.attrs[PROGRESS_KEY] = self._progress(complete=bool(self.done.all()))

    def finish(self, complete):
        self.record(final=True)
        return self.path


class _TiffSink(_ZarrSink):
    """BigTIFF output: chunks go to a resumable sibling zarr, converted page by page at the end."""

    def __init__(self, layout, plan, path: Path, document, signature, overwrite, input_id=None):
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
        self.final_path = path
        self.document = document
        super().__init__(layout, plan, _partial_path(path), document, signature, overwrite,
                         input_id)

    def finish(self, complete):
        super().finish(complete)
        if not complete:
            return self.path
        axes = self.layout.axes
        tiff_axes = "".join(a for a in axes if a not in "YX") + "YX"
        data: Any = self.array
        if tiff_axes != axes:
            import dask.array as da

            data = da.from_zarr(self.array).transpose([axes.index(a) for a in tiff_axes])
        doc = dict(self.document, axes=tiff_axes)
        io.write_tiff_atomic(self.final_path, data, axes=tiff_axes, document=doc, overwrite=True)
        shutil.rmtree(self.path, ignore_errors=True)
        return self.final_path


def _partial_path(path: Path) -> Path:
    """The resumable zarr store beside a TIFF output."""
    return path.with_name(f".{path.name}.partial.zarr")


def _pack_bits(done: np.ndarray) -> str:
    import base64

    return base64.b64encode(np.packbits(done).tobytes()).decode("ascii")


def _unpack_bits(text: str, n: int) -> np.ndarray:
    import base64

    bits = np.unpackbits(np.frombuffer(base64.b64decode(text), dtype=np.uint8))
    return bits[:n].astype(bool)


def _read_progress(path: Path) -> Optional[dict]:
    if not io.is_zarr_path(path) or not path.exists():
        return None
    import zarr

    try:
        rec = dict(zarr.open_array(str(path), mode="r").attrs).get(PROGRESS_KEY)
    except Exception:
        return None
    return rec if isinstance(rec, dict) else None


# -------------------------------------------------------------------- stitching
class _Stitcher:
    """Accumulates weighted tile outputs per chunk; writes a chunk when its last tile lands."""

    def __init__(self, plan: TilePlan, sink: _Sink, bundle: ModelBundle):
        self.plan = plan
        self.sink = sink
        self.pending: dict[tuple, list] = {}
        self.offset = np.asarray(bundle.norm_offset, np.float32).reshape(
            (-1,) + (1,) * len(plan.shape))
        self.scale = np.asarray(bundle.norm_scale, np.float32).reshape(self.offset.shape)
        self.n_channels = bundle.n_channels
        self._grid = plan.grid

    def chunk_id(self, sample: int, chunk: tuple[int, ...]) -> int:
        return sample * self.plan.n_tiles + int(np.ravel_multi_index(chunk, self._grid))

    def add(self, sample: int, tile: tuple[int, ...], y: np.ndarray) -> None:
        w = self.plan.tile_weights(tile)
        for chunk, t_sl, c_sl in self.plan.pieces(tile):
            cid = self.chunk_id(sample, chunk)
            if self.sink.done[cid]:
                continue
            entry = self.pending.get(cid)
            if entry is None:
                region = self.plan.chunk_slices(chunk)
                shape = (self.n_channels,) + tuple(r.stop - r.start for r in region)
                entry = self.pending[cid] = [np.zeros(shape, np.float32), 0]
            entry[0][(slice(None),) + c_sl] += y[(slice(None),) + t_sl] * w[t_sl]
            entry[1] += 1
            if entry[1] == self.plan.contributions(chunk):
                block = entry[0] * self.scale + self.offset
                self.sink.write(sample, self.plan.chunk_slices(chunk), block)
                self.sink.done[cid] = True
                del self.pending[cid]


# ---------------------------------------------------------------------- compute
def _dihedral(x: Any, k: int, flip: bool) -> Any:
    import torch

    x = torch.rot90(x, k, dims=(-2, -1))
    return x.flip(-1) if flip else x


def _undihedral(y: Any, k: int, flip: bool) -> Any:
    import torch

    y = y.flip(-1) if flip else y
    return torch.rot90(y, -k, dims=(-2, -1))


def refine_network(net: Any) -> Any:
    """The network of R3's refinement passes: ``net.refine_module`` (full resolution,
    e.g. the blind-spot prior's mean without pixel shuffle) or ``net`` itself."""
    return getattr(net, "refine_module", net)


class _Runner:
    """Forward passes with precision, memory format, TTA and J-invariance applied.

    J-invariant inference hides the grid subset ``J`` by *source* pixel: ``phase`` holds,
    per tile voxel, the subset id of the image pixel it was read from, so reflected copies
    of a hidden pixel near the image border are hidden too.
    """

    def __init__(self, net: Any, device: Any, dtype: Any, channels_last: bool, tta: bool,
                 predictor: str, grid: int, mode: str, n_subsets: int,
                 r3: Optional[tuple[int, float]] = None):
        import torch

        self.net, self.device, self.dtype = net, device, dtype
        self.tta, self.predictor, self.grid, self.mode = tta, predictor, grid, mode
        self.j_invariant = predictor != "plain"  # masked passes, each kept on its subset
        self.n_subsets = n_subsets
        self.r3 = r3  # (passes, fraction) of R3 refinement, or None
        self.refine = refine_network(net)
        self.memory_format = None
        if channels_last:
            self.memory_format = (torch.channels_last if getattr(net, "spatial_dims", 2) == 2
                                  else torch.channels_last_3d)


    def _net(self, x: Any, net: Any = None) -> Any:
        from .device import autocast
        from .models import apply_padded

        if self.memory_format is not None:
            x = x.contiguous(memory_format=self.memory_format)
        with autocast(self.device, self.dtype):
            return apply_padded(self.net if net is None else net, x).float()

    def _once(self, x: Any, phase: Any) -> Any:
        if not self.j_invariant:
            y = self._net(x)
        else:
            from .masking import invariant_apply

            y = invariant_apply(self._net, x, phase, self.n_subsets, self.mode)
        if self.r3 is None:
            return y
        from .refine import r3_refine

        return r3_refine(lambda t: self._net(t, self.refine), x, y, *self.r3)

    def __call__(self, x: Any, phase: Any = None) -> Any:
        if not self.tta:
            return self._once(x, phase)
        acc = None
        for k in range(4):
            for flip in (False, True):
                ph = None if phase is None else _dihedral(phase, k, flip)
                y = _undihedral(self._once(_dihedral(x, k, flip), ph), k, flip)
                acc = y if acc is None else acc + y
        return acc / 8.0


# --------------------------------------------------------------------- predict
def _resolve_input(data: Any, axes: Optional[str], bundle: ModelBundle) -> tuple[Any, str]:
    file_axes = None
    if isinstance(data, (str, os.PathLike)):
        data, file_axes = io.open_image(data)
    if not hasattr(data, "shape") or not hasattr(data, "__getitem__"):
        data = np.asarray(data)
    shape = tuple(int(s) for s in data.shape)
    validation.check_array(data, "the input", purpose="predict")
    return data, validation.resolve_axes(shape, axes, file_axes=file_axes,
                                         model_axes=bundle.axes, name="the input")


def _output_kind(out: Any) -> Optional[str]:
    if out is None:
        return None
    p = Path(out)
    if io.is_zarr_path(p):
        return "zarr"
    if io.is_tiff_path(p):
        return "tiff"
    if p.suffix.lower() == ".npy":
        return "npy"
    raise ValueError(f"output {p} must end in .zarr, .tif, .tiff or .npy")


def _signature(bundle_meta: dict, layout: Layout, j_invariant: bool, tta: bool,
               plan: TilePlan) -> str:
    h = hashlib.sha256()
    h.update(bundle_meta["safetensors_b64"].encode("ascii"))
    borders = [a.border for a in plan.axes]  # what the network sees at the image's ends
    h.update(json.dumps([layout.axes, layout.shape, j_invariant, tta, borders]).encode())
    return h.hexdigest()[:32]


def default_border(bundle: ModelBundle, halo: tuple[int, ...], context: tuple[int, ...],
                   multiple: int = 1) -> tuple[int, ...]:
    """Voxels reflected beyond each end of each spatial axis when none are asked for.

    Half the context (16 voxels for the default U-Net), and a quarter of it along an axis
    the model's training patches were shorter than its receptive field (``2 * halo + 1``;
    the 16-plane Z of the default 3D patch): the network never learned to use neighbours
    that far away along it. On FMD images and 3D phantoms these borders denoise as well as
    the full context (docs/prediction.md, "How much border"), and a thin volume costs far
    less: a 16-plane volume runs as 32 planes instead of 80.
    """
    patch = bundle.config.patch_size
    if patch is None or len(patch) != len(context):
        patch = default_patch_size(len(context))
    return tuple(min(c, round_up(-(-c // (2 if p >= 2 * h + 1 else 4)), multiple))
                 for p, h, c in zip(patch, halo, context))


def _plan(layout: Layout, net: Any, bundle: ModelBundle, config: PredictConfig, cost: float,
          budget: float, device_type: str, j_invariant: bool,
          grid: int) -> tuple[TilePlan, int, list[str]]:
    nd = len(layout.spatial)
    notes = []
    net_halo = tuple(int(h) for h in getattr(net, "halo", (0,) * nd))
    halo = net_halo
    multiple = int(getattr(net, "size_multiple", 1))
    if config.r3:  # refinement passes read the first pass's output around each pixel
        halo = tuple(h + r + 1 for h, r in zip(halo, refine_network(net).halo))
    if j_invariant:
        halo = tuple(h + 1 for h in halo)  # neighbour interpolation of the masked pixels
        multiple = math.lcm(multiple, grid)
    context = list(halo)
    if config.overlap is not None:
        if len(config.overlap) != nd:
            raise ValueError(f"overlap needs {nd} entries ({layout.spatial}), got {config.overlap}")
        context = [max(h, int(o)) for h, o in zip(halo, config.overlap)]
        if any(int(o) < h for h, o in zip(halo, config.overlap)):
            notes.append(f"overlap {tuple(config.overlap)} raised to the network's "
                         f"receptive-field halo {halo}")
    context = [round_up(c, multiple) for c in context]
    if config.border is not None:
        if len(config.border) != nd:
            raise ValueError(f"border needs {nd} entries ({layout.spatial}), got {config.border}")
        border = tuple(min(int(b), c) for b, c in zip(config.border, context))
    else:
        border = default_border(bundle, net_halo, tuple(context), multiple)
    if config.tile_shape is not None:
        if len(config.tile_shape) != nd:
            raise ValueError(
                f"tile_shape needs {nd} entries ({layout.spatial}), got {config.tile_shape}")
        tile = tuple(int(t) for t in config.tile_shape)
    else:
        tile = auto_tile(cost * (config.batch_size or 1), budget, layout.spatial_shape,
                         tuple(context), multiple, border, device_type)
    plan = make_plan(layout.spatial_shape, tile, context, border=border, multiple=multiple)
    batch = config.batch_size or batch_size(
        math.prod(plan.tile_shape), cost, budget, device_type)
    return plan, int(batch), notes


def predict(
    bundle: ModelBundle,
    data: Any,
    *,
    axes: Optional[str] = None,
    config: PredictConfig = PredictConfig(),
    out: Any = None,
    stop: Optional[threading.Event] = None,
    provenance: Optional[dict] = None,
) -> Generator[Any, None, Any]:
    """Denoise ``data`` with ``bundle``, tile by tile.

    Parameters
    ----------
    bundle : ModelBundle
        The trained model.
    data : array-like or path
        numpy, dask, zarr, memmap, or a path opened lazily with :func:`io.open_image`.
        Never modified; only the tiles being processed are read.
    axes : str, optional
        Data axes; default from file metadata, the model's axes (same rank) or a guess.
    config : PredictConfig
        Tiling, batching, TTA, J-invariance, precision, device, overwrite.
    out : path, optional
        ``.zarr`` (resumable), ``.tif`` (BigTIFF) or ``.npy``; None returns numpy.
    stop : threading.Event, optional
        Set it to stop after the current batch; a zarr / TIFF output is left resumable.
    provenance : dict, optional
        Stored with the model in file outputs (see :func:`~napari_selfdenoise.core.provenance.make_provenance`).

    Yields
    ------
    TileDone, Message

    Returns
    -------
    numpy.ndarray (float32, shaped like ``data``) or the output path.
    """
    import torch

    from .device import execution_record, resolve_precision, select_device, use_channels_last

    src = resume.source_path(data)
    data, axes = _resolve_input(data, axes, bundle)
    layout = map_axes(bundle, axes, tuple(int(s) for s in data.shape))
    kind = _output_kind(out)
    if kind is not None:  # before any work: not an input, writable, room for it
        outputs.check_output(out, overwrite=config.overwrite or kind != "npy",
                             inputs=[src], label="output", directory_ok=kind == "zarr",
                             expected_bytes=4 * math.prod(layout.shape))
    device = select_device(config.device)
    method = get_method(bundle.method)
    predictor = method.predictor(bundle.config, config.j_invariant)
    j_inv = predictor != "plain"
    # the tile plan aligns tiles to the grid of a J-invariant predictor
    grid = bundle.config.masking.grid if predictor == "j_invariant" else 1
    mode = method.fill(bundle.config) if predictor == "j_invariant" else "zero"
    n_subsets = method.n_subsets(bundle.config, bundle.spatial_dims)

    net = fold_batch_norm(bundle.build_model())
    cost = bytes_per_voxel(net, bundle.spatial_dims, bundle.n_channels, bool(j_inv))
    budget = memory_budget(device, config)
    plan, batch, notes = _plan(layout, net, bundle, config, cost, budget, device.type,
                                predictor == "j_invariant", grid)
    cl = use_channels_last(device, config.channels_last)
    net = net.to(device)
    if cl:
        net = net.to(memory_format=torch.channels_last if bundle.spatial_dims == 2
                     else torch.channels_last_3d)
    dtype = resolve_precision(device, config.precision)
    runner = _Runner(net, device, dtype, cl, config.tta, predictor, grid, mode, n_subsets,
                     (config.r3_passes, config.r3_fraction) if config.r3 else None)
    execution = execution_record(device, dtype, cl)
    for note in notes:
        yield Message(note, "warning")

    lock = outputs.OutputLock(out).acquire() if kind is not None else None
    try:
        if lock is not None:
            outputs.remove_stale_temporaries(out)
        sink, plan = _make_sink(
            kind, out, layout, plan, bundle, config, provenance, bool(j_inv),
            resume.input_identity(data, src) if kind in ("zarr", "tiff") else None, execution)
        stitcher = _Stitcher(plan, sink, bundle)
        work = _work_list(plan, layout, sink.done)
        total = layout.n_samples * plan.n_tiles
        yield PredictStarted(execution, tuple(plan.tile_shape), int(batch), total)
        skipped = total - len(work)
        if skipped:
            yield Message(f"resuming: {skipped} of {total} tiles already done")
        result = yield from _pipeline(
            work, batch, plan, layout, data, bundle, runner, device, stitcher, sink, stop,
            total, skipped)
    finally:
        if lock is not None:
            lock.release()
    if sink.nonfinite:
        yield Message(f"the input has {sink.nonfinite} NaN or infinite pixel(s): the network "
                      "saw them filled with the image mean, and they are NaN in the output",
                      "warning")
    return result


def _make_sink(kind: Optional[str], out: Any, layout: Layout, plan: TilePlan,
               bundle: ModelBundle, config: PredictConfig, provenance: Optional[dict],
               j_inv: bool, input_id: Optional[dict],
               execution: dict) -> tuple[_Sink, TilePlan]:
    """The output sink and the tile plan to run: a resumed zarr / TIFF output keeps the
    plan it started with.

    File outputs carry the model and the provenance, with ``execution`` (device, precision)."""
    n_chunks = layout.n_samples * plan.n_tiles
    if kind == "npy":
        return _NpySink(layout, n_chunks, outputs.prepare_parent(out)), plan
    if kind is None:
        validation.check_fits_in_memory(4 * math.prod(layout.shape), "the denoised image",
                                        "write it to a .zarr or .tif output instead")
        return _ArraySink(layout, n_chunks), plan
    model_meta = bundle.to_metadata()
    prov = provenance if provenance is not None else make_provenance(
        "predict", None, config, bundle=bundle)
    prov = {**prov, "execution": execution}
    doc = io.make_document(axes=layout.axes, model=model_meta, provenance=prov)
    # R3 changes the result: it joins the signature only when on, so older records match
    tta_r3 = [config.tta, config.r3_passes, config.r3_fraction] if config.r3 else config.tta
    sig = _signature(model_meta, layout, j_inv, tta_r3, plan)
    path = Path(out)
    existing = _read_progress(path if kind == "zarr" else _partial_path(path))
    if existing is not None and existing.get("signature") == sig and not config.overwrite:
        plan = TilePlan(tuple(AxisPlan(*p) for p in existing["plan"]))  # resume as planned
    cls = _ZarrSink if kind == "zarr" else _TiffSink
    return cls(layout, plan, path, doc, sig, config.overwrite, input_id), plan


def _work_list(plan: TilePlan, layout: Layout, done: np.ndarray) -> list[tuple[int, tuple]]:
    work = []
    per_sample = done.reshape(layout.n_samples, plan.n_tiles)
    all_tiles = list(plan.tiles())
    for s in range(layout.n_samples):
        if per_sample[s].all():
            continue
        if not per_sample[s].any():
            work.extend((s, t) for t in all_tiles)
            continue
        chunks = [np.unravel_index(i, plan.grid) for i in np.flatnonzero(~per_sample[s])]
        work.extend((s, t) for t in plan.tiles_for_chunks(chunks))
    return work


def _read_tile(data: Any, layout: Layout, plan: TilePlan, bundle: ModelBundle, sample: int,
               tile: tuple) -> np.ndarray:
    values: dict[str, Any] = dict(layout.sample_index(sample))
    values["C"] = slice(None)
    index = [values.get(a) for a in layout.axes]
    dims = [layout.axes.index(a) for a in layout.spatial]
    block = read_reflected(data, index, plan.tile_region(tile), dims, plan.shape)
    letters = layout.block_letters
    if "C" in letters:
        block = np.moveaxis(block, letters.index("C"), 0)
        rest = letters.replace("C", "")
    else:
        block = block[None]
        rest = letters
    perm = [0] + [1 + rest.index(a) for a in layout.spatial]
    block = np.transpose(block, perm)
    return bundle.normalize(block, channel_axis=0)


def _phase(plan: TilePlan, tile: tuple, runner: "_Runner") -> np.ndarray:
    """Subset id of the *source* pixel of every tile voxel (reflected copies included).

    J-invariant: the grid subset (``range(grid ** ndim)``); complementary masks: the mask
    :func:`~napari_selfdenoise.core.masking.complementary_phase` assigns to the pixel.
    """
    sources = [reflect_index(np.arange(start, stop), n)
               for (start, stop), n in zip(plan.tile_region(tile), plan.shape)]
    if runner.predictor == "complementary":
        from .masking import complementary_phase

        return complementary_phase(sources, runner.n_subsets)[None]
    grid = runner.grid
    ids = np.zeros((), dtype=np.int16)
    for src in sources:
        ids = np.add.outer(ids * grid, (src % grid).astype(np.int16))
    return ids[None]


def _pipeline(work, batch, plan, layout, data, bundle, runner, device, stitcher, sink, stop,
              total, skipped) -> Generator[Any, None, Any]:
    import torch

    halt = threading.Event()
    to_compute: queue.Queue = queue.Queue(maxsize=2)
    to_write: queue.Queue = queue.Queue(maxsize=2)
    errors: list[BaseException] = []
    pin = device.type == "cuda"

    def reader() -> None:
        try:
            for start in range(0, len(work), batch):
                if halt.is_set():
                    break
                items = work[start : start + batch]
                arr = np.stack([_read_tile(data, layout, plan, bundle, s, t) for s, t in items])
                bad = validation.fill_nonfinite(arr)  # NaN policy: see docs/reliability.md
                if bad is not None:
                    sink.count_nan = True
                x = torch.from_numpy(arr)
                phase = None
                if runner.j_invariant:
                    phase = torch.from_numpy(np.stack(
                        [_phase(plan, t, runner) for _, t in items]))
                if pin:
                    x = x.pin_memory()
                _put(to_compute, (items, x, phase, bad), halt)
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)
        finally:
            _put(to_compute, None, None)

    def writer() -> None:
        try:
            while True:
                item = to_write.get()
                if item is None:
                    break
                items, y = item
                for (s, t), yi in zip(items, y):
                    stitcher.add(s, t, yi)
                sink.record()
        except BaseException as exc:
            errors.append(exc)
            halt.set()
            while to_write.get() is not None:  # drain so the producer never blocks
                pass

    threads = [threading.Thread(target=reader, daemon=True, name="predict-reader"),
               threading.Thread(target=writer, daemon=True, name="predict-writer")]
    for th in threads:
        th.start()
    t0 = time.perf_counter()
    done_tiles = 0
    voxels_per_tile = math.prod(plan.shape) * layout.n_samples / max(total, 1)
    stopped = ok = False
    try:
        with torch.inference_mode():
            while True:
                item = to_compute.get()
                if item is None:
                    break
                if errors:
                    break
                items, x, phase, bad = item
                if phase is not None:
                    phase = phase.to(device, non_blocking=True)
                y = runner(x.to(device, non_blocking=True), phase).cpu().numpy()
                if bad is not None:
                    y[bad] = np.nan  # back at the input's non-finite pixels
                to_write.put((items, y))
                done_tiles += len(items)
                elapsed = time.perf_counter() - t0
                rate = done_tiles / elapsed if elapsed > 0 else 0.0
                left = len(work) - done_tiles
                yield TileDone(
                    tiles_done=skipped + done_tiles, tiles_total=total,
                    voxels_per_s=rate * voxels_per_tile, elapsed_s=elapsed,
                    eta_s=left / rate if rate > 0 else None, skipped=skipped,
                )
                if stop is not None and stop.is_set() and left > 0:
                    stopped = True
                    break
        ok = True
    finally:
        halt.set()
        while threads[0].is_alive():  # unblock the reader
            try:
                to_compute.get(timeout=0.05)
            except queue.Empty:
                pass
        to_write.put(None)
        threads[1].join()
        if errors or not ok:  # an error, or the caller closed the generator
            try:
                sink.finish(complete=False)
            finally:
                if errors:
                    raise errors[0]
    complete = bool(sink.done.all())
    result = sink.finish(complete)
    if stopped:
        yield Message(f"stopped after {skipped + done_tiles} of {total} tiles"
                      + ("; run again with the same output to resume" if isinstance(
                          sink, _ZarrSink) else ""), "warning")
    return result


def _put(q: queue.Queue, item: Any, halt: Optional[threading.Event]) -> None:
    while True:
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            if halt is not None and halt.is_set():
                return


def predict_array(bundle: ModelBundle, array: Any, axes: Optional[str] = None, **kw: Any) -> Any:
    """Run :func:`predict` to the end and return its result.

    Keyword arguments are :func:`predict`'s (``config``, ``out``, ``stop``, ``provenance``,
    ``on_event``) or :class:`~napari_selfdenoise.core.config.PredictConfig` fields.
    """
    fields = {k: kw.pop(k) for k in list(kw) if k in PredictConfig.model_fields}
    config = kw.pop("config", None) or PredictConfig()
    if fields:
        config = config.model_copy(update=fields)
        PredictConfig.model_validate(config.model_dump())
    on_event = kw.pop("on_event", None)
    return run_to_end(predict(bundle, array, axes=axes, config=config, **kw), on_event)
