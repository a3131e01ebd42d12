"""Load a bioimage.io model package back into napari-selfdenoise, running none of its code.

A package we exported carries the original ``.sdmodel`` file (a safetensors file with a
JSON header): it is read straight out of the zip, its checksum checked against the
package's rdf.yaml, and parsed by :meth:`ModelBundle.from_bytes` (no pickle, no
``torch.load``, no architecture file executed). Nothing else in the package is used, so
the round trip is lossless: the model predicts exactly as before export.

Packages from other tools (CAREamics' N2V / N2V2 included) carry no ``.sdmodel`` and are
refused with one line: their weights belong to another architecture and would have to
be run through their own Python code.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path
from typing import Any, Optional

#: names of a package's description file (the spec's, newest first)
RDF_NAMES = ("rdf.yaml", "bioimageio.yaml")
MAX_RDF_BYTES = 4 * 1024 * 1024


def _rdf_name(names: list[str]) -> Optional[str]:
    for n in RDF_NAMES:
        if n in names:
            return n
    found = [n for n in names if n.endswith(".bioimageio.yaml") and "/" not in n]
    return found[0] if found else None


def _read(zf: zipfile.ZipFile, name: str, limit: int, path: Path) -> bytes:
    from ..bundle import ModelFileError

    info = zf.getinfo(name)
    if info.file_size > limit:
        raise ModelFileError(f"{path}: {name} is {info.file_size / 1e6:.0f} MB, larger than "
                             "any file napari-selfdenoise writes")
    try:
        data = zf.read(name)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:  # corrupt member or CRC error
        raise ModelFileError(f"{path}: cannot read {name} from the package ({exc})") from None
    if len(data) > limit:
        raise ModelFileError(f"{path}: {name} is larger than its zip entry says")
    return data


def _description(zf: zipfile.ZipFile, path: Path) -> dict:
    from ..bundle import ModelFileError

    names = zf.namelist()
    rdf = _rdf_name(names)
    if rdf is None:
        if any(n.endswith("data.pkl") for n in names):  # a torch.save checkpoint
            raise ModelFileError(
                f"{path} looks like a pickled PyTorch checkpoint (torch.save); those can run "
                "arbitrary code when loaded and are never opened. Use a .sdmodel file or a "
                "bioimage.io package exported by napari-selfdenoise")
        raise ModelFileError(f"{path} is a zip file but not a bioimage.io model package "
                             "(it has no rdf.yaml); give a .sdmodel file or an exported package")
    import yaml

    try:
        doc = yaml.safe_load(_read(zf, rdf, MAX_RDF_BYTES, path))
    except yaml.YAMLError as exc:
        raise ModelFileError(f"{path}: its {rdf} is not valid YAML ({str(exc)[:120]})") from None
    if not isinstance(doc, dict) or doc.get("type") != "model":
        raise ModelFileError(f"{path} is a bioimage.io package but not a model description")
    return doc


def _sdmodel_entry(doc: dict) -> tuple[Optional[str], Optional[str]]:
    """``(file name, sha256)`` of the attached .sdmodel, if the package has one."""
    config = doc.get("config")
    ours = config.get("napari_selfdenoise") if isinstance(config, dict) else None
    wanted = ours.get("sdmodel") if isinstance(ours, dict) else None
    for a in doc.get("attachments") or []:
        src = a.get("source") if isinstance(a, dict) else a
        if isinstance(src, str) and (src == wanted or (wanted is None
                                                       and src.endswith(".sdmodel"))):
            sha = a.get("sha256") if isinstance(a, dict) else None
            return src, sha if isinstance(sha, str) else None
    return None, None


def _foreign(doc: dict, path: Path) -> str:
    """One line saying what the foreign package is and that it cannot be loaded."""
    weights = doc.get("weights") if isinstance(doc.get("weights"), dict) else {}
    arch = (weights.get("pytorch_state_dict") or {}).get("architecture") \
        if isinstance(weights.get("pytorch_state_dict"), dict) else None
    what = ""
    if isinstance(arch, dict):
        what = f" (architecture {arch.get('callable', '?')} from " \
               f"{arch.get('source') or arch.get('import_from') or '?'})"
    return (f"{path} is a bioimage.io model package{what} without a napari-selfdenoise "
            "model inside; only packages exported by napari-selfdenoise can be loaded "
            "(packages from other tools, e.g. CAREamics, would need their own code to run)")


def load_package(path: str | os.PathLike) -> Any:
    """The :class:`~napari_selfdenoise.core.bundle.ModelBundle` inside an exported package.

    Raises
    ------
    ModelFileError
        A zip that is no package, a package without our model, a checksum mismatch or a
        corrupt model (one line each).
    """
    from ..bundle import MAX_FILE_BYTES, ModelBundle, ModelFileError

    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            doc = _description(zf, path)
            name, sha = _sdmodel_entry(doc)
            if name is None or name not in zf.namelist():
                raise ModelFileError(_foreign(doc, path))
            data = _read(zf, name, MAX_FILE_BYTES, path)
    except zipfile.BadZipFile as exc:
        raise ModelFileError(f"{path} is a corrupt zip file ({exc})") from None
    if sha is not None and hashlib.sha256(data).hexdigest() != sha.lower():
        raise ModelFileError(f"{path}: {name} does not match the checksum in the package's "
                             "description (the package was modified or is damaged)")
    return ModelBundle.from_bytes(data, source=f"{path} ({name})")


def is_package(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a zip file (a candidate bioimage.io package).

    Decided by the zip's leading local-file signature, not by ``zipfile.is_zipfile``
    (which also accepts any file with an end-of-archive record near its end, as random
    weights could hold); a safetensors header length never starts with these bytes
    below 64 MiB.
    """
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PK\x03\x04"
    except OSError:
        return False
