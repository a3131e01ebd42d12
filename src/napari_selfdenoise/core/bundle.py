"""The model bundle: weights, configuration, normalisation, axes and history in one file.

The file is a `safetensors <https://github.com/huggingface/safetensors>`_ file whose
header metadata holds one JSON document (key ``napari_selfdenoise``). Loading it parses
JSON and raw tensor bytes only: no pickle, no code execution. The same bytes, base64
encoded, are the plain-data form stored in napari layer metadata and in files our writer
saves (:meth:`ModelBundle.to_metadata` / :meth:`ModelBundle.from_metadata`).
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .config import TrainConfig
from .validation import UserError

FORMAT = "napari-selfdenoise/model"
FORMAT_VERSION = 1
METADATA_KEY = "napari_selfdenoise_model"
_HEADER_KEY = "napari_selfdenoise"
MAX_HEADER_BYTES = 16 * 1024 * 1024
MAX_FILE_BYTES = 2 * 1024**3


class ModelFileError(UserError):
    """A model file or metadata entry is corrupt, truncated, foreign or unsafe."""


def _package_version() -> str:
    from .. import __version__

    return __version__


@dataclass
class ModelBundle:
    """A trained model and everything needed to apply it.

    Attributes
    ----------
    config : TrainConfig
        The full training configuration (method, network, masking, ...).
    axes : str
        Axes of the data the model was trained on (e.g. ``"TYX"``).
    spatial_dims : int
        2 or 3.
    n_channels : int
        Input (= output) channels, modelled jointly.
    norm_offset, norm_scale : list of float
        Per-channel normalisation ``(x - offset) / scale`` computed once on the training data.
    state_dict : dict of str to torch.Tensor
        Network weights (fp32).
    history : list of dict
        Logged training steps (``step``, ``loss``, ``val_loss``, ...).
    info : dict
        Free-form JSON-serialisable provenance (training data name, stop reason, ...).
    """

    config: TrainConfig
    axes: str
    spatial_dims: int
    n_channels: int
    norm_offset: list[float]
    norm_scale: list[float]
    state_dict: dict[str, Any] = field(repr=False)
    history: list[dict] = field(default_factory=list, repr=False)
    info: dict = field(default_factory=dict)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat())
    package_version: str = field(default_factory=_package_version)

    # ------------------------------------------------------------------ network
    def build_model(self, device: Any = None) -> Any:
        """Instantiate the network with these weights, in eval mode, on ``device``."""
        from .models import build_network

        net = build_network(
            self.config.network,
            spatial_dims=self.spatial_dims,
            in_channels=self.n_channels,
            method=self.config.method,
            params=self.config.params,
        )
        try:
            net.load_state_dict(self.state_dict, strict=True)
        except RuntimeError as exc:
            raise ModelFileError(f"weights do not match the stored network configuration: {exc}")
        net.eval()
        if device is not None:
            net.to(device)
        return net

    # ------------------------------------------------------------ normalisation
    def normalize(self, x: np.ndarray, channel_axis: int = 1) -> np.ndarray:
        """``(x - offset) / scale`` per channel, as float32 (``x`` is not modified)."""
        off, scale = self._norm_arrays(np.ndim(x), channel_axis)
        return ((np.asarray(x, dtype=np.float32) - off) / scale).astype(np.float32, copy=False)

    def denormalize(self, x: np.ndarray, channel_axis: int = 1) -> np.ndarray:
        """Inverse of :meth:`normalize`."""
        off, scale = self._norm_arrays(np.ndim(x), channel_axis)
        return (np.asarray(x, dtype=np.float32) * scale + off).astype(np.float32, copy=False)

    def _norm_arrays(self, ndim: int, channel_axis: int) -> tuple[np.ndarray, np.ndarray]:
        shape = [1] * ndim
        if ndim:
            shape[channel_axis] = self.n_channels
        off = np.asarray(self.norm_offset, dtype=np.float32).reshape(shape)
        scale = np.asarray(self.norm_scale, dtype=np.float32).reshape(shape)
        return off, scale

    @property
    def method(self) -> str:
        return self.config.method

    # ---------------------------------------------------------- serialisation
    def header(self) -> dict:
        """The JSON-serialisable description stored beside the weights."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "package_version": self.package_version,
            "created": self.created,
            "config": self.config.model_dump(mode="json"),
            "axes": self.axes,
            "spatial_dims": self.spatial_dims,
            "n_channels": self.n_channels,
            "norm_offset": [float(v) for v in self.norm_offset],
            "norm_scale": [float(v) for v in self.norm_scale],
            "history": self.history,
            "info": self.info,
        }

    def to_bytes(self) -> bytes:
        """Serialise to safetensors bytes (weights + JSON header)."""
        import torch
        from safetensors.torch import save

        tensors = {k: v.detach().to("cpu", torch.float32).contiguous()
                   if v.is_floating_point() else v.detach().cpu().contiguous()
                   for k, v in self.state_dict.items()}
        meta = {_HEADER_KEY: json.dumps(self.header(), allow_nan=True)}
        return save(tensors, metadata=meta)

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str = "model data") -> "ModelBundle":
        """Parse safetensors bytes; raises :class:`ModelFileError` on anything unexpected."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ModelFileError(f"{source}: expected bytes, got {type(data).__name__}")
        data = bytes(data)
        if len(data) == 0:
            raise ModelFileError(f"{source} is empty")
        # a safetensors header length may itself start with 0x80 or "PK": its JSON
        # header always starts at byte 8 with "{", which a pickle or zip never has there
        looks_json = data[8:9] == b"{"
        if (data[:1] == b"\x80" or data[:2] == b"PK") and not looks_json:
            raise ModelFileError(
                f"{source} looks like a pickled PyTorch checkpoint (torch.save); those can run "
                "arbitrary code when loaded and are never opened. Export a napari-selfdenoise "
                "model file (.sdmodel) instead"
            )
        if len(data) < 8:
            raise ModelFileError(f"{source} is truncated ({len(data)} bytes)")
        (n,) = struct.unpack("<Q", data[:8])
        if n > MAX_HEADER_BYTES or 8 + n > len(data):
            raise ModelFileError(
                f"{source} is not a napari-selfdenoise model file (bad or truncated header)"
            )
        from .validation import check_model_header, check_weights, load_json, strict_settings

        try:
            raw = load_json(data[8 : 8 + n], f"{source} header")
        except UserError as exc:
            raise ModelFileError(f"{source} has a corrupt header: {exc}") from None
        meta = raw.get("__metadata__") if isinstance(raw, dict) else None
        if not isinstance(meta, dict) or _HEADER_KEY not in meta:
            raise ModelFileError(
                f"{source} is a safetensors file but not a napari-selfdenoise model "
                "(no napari_selfdenoise metadata)"
            )
        try:
            if not isinstance(meta[_HEADER_KEY], str):
                raise UserError(f"{source} has corrupt model metadata (not a string)")
            header = load_json(meta[_HEADER_KEY], f"{source} (model metadata)")
            if not isinstance(header, dict) or header.get("format") != FORMAT:
                raise UserError(f"{source} is not a napari-selfdenoise model (wrong format tag)")
            check_model_header(header, source, FORMAT_VERSION)
            config = strict_settings(TrainConfig, header["config"], f"{source} (config)")
        except UserError as exc:
            raise ModelFileError(str(exc)) from None
        try:
            from safetensors.torch import load

            tensors = load(data)
        except Exception as exc:  # safetensors raises its own error types
            raise ModelFileError(f"{source} has corrupt weights: {exc}") from None
        try:
            check_weights(tensors, source)
        except UserError as exc:
            raise ModelFileError(str(exc)) from None
        try:
            bundle = cls(
                config=config,
                axes=str(header["axes"]),
                spatial_dims=int(header["spatial_dims"]),
                n_channels=int(header["n_channels"]),
                norm_offset=[float(v) for v in header["norm_offset"]],
                norm_scale=[float(v) for v in header["norm_scale"]],
                state_dict=dict(tensors),
                history=list(header.get("history", [])),
                info=dict(header.get("info", {})),
                created=str(header.get("created", "")),
                package_version=str(header.get("package_version", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"{source} has invalid model metadata: {exc}") from None
        if bundle.spatial_dims not in (2, 3):
            raise ModelFileError(f"{source}: spatial_dims must be 2 or 3")
        if len(bundle.norm_offset) != bundle.n_channels or len(bundle.norm_scale) != bundle.n_channels:
            raise ModelFileError(f"{source}: normalisation does not match the channel count")
        try:
            bundle.build_model()  # checks the weights fit the configuration
        except ModelFileError as exc:
            raise ModelFileError(f"{source}: {exc}") from None
        return bundle

    def save(self, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
        """Write the model file atomically (temporary file + rename)."""
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
        path.parent.mkdir(parents=True, exist_ok=True)
        data = self.to_bytes()
        from .io import temporary_sibling

        with temporary_sibling(path) as tmp:  # umask mode, full disk as one clear error
            Path(tmp).write_bytes(data)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ModelBundle":
        """Read a model file written by :meth:`save`, or the model inside a bioimage.io
        package exported by napari-selfdenoise (never unpickles anything)."""
        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"model file {path} does not exist")
        from .bioimageio.importer import is_package, load_package

        if is_package(path):
            return load_package(path)
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ModelFileError(f"{path} is {size / 1e9:.1f} GB, larger than any model we write")
        return cls.from_bytes(path.read_bytes(), source=str(path))

    def to_metadata(self) -> dict:
        """Plain-data (JSON-serialisable) form for napari layer metadata and file attributes."""
        cfg = self.config
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "method": cfg.method,
            "axes": self.axes,
            "spatial_dims": self.spatial_dims,
            "n_channels": self.n_channels,
            "package_version": self.package_version,
            "created": self.created,
            "safetensors_b64": base64.b64encode(self.to_bytes()).decode("ascii"),
        }

    @classmethod
    def from_metadata(cls, meta: Any) -> "ModelBundle":
        """Inverse of :meth:`to_metadata`."""
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ModelFileError("metadata entry is not a napari-selfdenoise model")
        payload = meta.get("safetensors_b64")
        if not isinstance(payload, str):
            raise ModelFileError("metadata entry has no model payload")
        try:
            raw = base64.b64decode(payload.encode("ascii"), validate=True)
        except (ValueError, UnicodeEncodeError) as exc:
            raise ModelFileError(f"metadata model payload is not valid base64: {exc}") from None
        return cls.from_bytes(raw, source="layer metadata model")


def find_model_in_metadata(metadata: Optional[dict]) -> Optional[dict]:
    """Return the model entry stored under :data:`METADATA_KEY` in a metadata dict, if any."""
    if not isinstance(metadata, dict):
        return None
    entry = metadata.get(METADATA_KEY)
    return entry if isinstance(entry, dict) else None
