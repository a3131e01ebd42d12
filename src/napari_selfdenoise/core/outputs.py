"""Output checks, exclusive output locks and file modes: nothing we write replaces data.

- :func:`check_output`: a known extension, not one of the inputs (resolved paths,
  symlinks and hard links), an existing output only with ``overwrite``, a writable parent
  folder and enough free space, all checked *before* any work starts.
- :class:`OutputLock`: an exclusive lock on an output (``.NAME.lock`` beside it, holding
  the owner's pid and host). The lock is a kernel ``flock``: it dies with its process,
  so a crashed run (even ``kill -9``) never blocks the next one; a lock file nobody holds
  is stale and taken over.
- :func:`apply_umask`: files are created with the mode any program would give them.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from .validation import UserError

IMAGE_SUFFIXES = (".tif", ".tiff", ".zarr", ".npy")
MODEL_SUFFIXES = (".sdmodel",)
#: free space kept beyond an output's estimated size
FREE_SPACE_MARGIN = 1.05


class OutputError(UserError):
    """An output cannot be written as asked (exists, is an input, not writable, ...)."""


# ------------------------------------------------------------------------------ paths
def same_path(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` are the same file or folder (symlinks, hard links)."""
    pa, pb = Path(a), Path(b)
    try:
        if pa.exists() and pb.exists() and os.path.samefile(pa, pb):
            return True
    except OSError:
        pass
    return pa.resolve() == pb.resolve()


def _inside(child: Path, parent: Path) -> bool:
    try:
        child.resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False


def check_not_input(out: Any, inputs: Iterable[Any], label: str = "output") -> None:
    """Refuse an output that is, contains or lies inside one of the inputs."""
    out = Path(out)
    for inp in inputs:
        if inp is None:
            continue
        inp = Path(inp)
        if same_path(out, inp):
            raise OutputError(f"{label} {out} is the input {inp}; writing it would destroy "
                              "the input: choose another output name")
        if (inp.is_dir() and _inside(out, inp)) or (out.is_dir() and _inside(inp, out)):
            raise OutputError(f"{label} {out} and the input {inp} overlap (one is inside "
                              "the other): choose an output outside the input")


def _existing_ancestor(path: Path) -> Path:
    p = path.resolve().parent
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_writable(folder: Path, label: str, target: Path) -> None:
    """Create and delete a probe file in ``folder`` (also catches read-only mounts)."""
    if not folder.is_dir():
        raise OutputError(f"cannot write {label} {target}: {folder} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".napari-selfdenoise-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"cannot write {label} {target}: folder {folder} is not writable "
                          f"({exc.strerror}); choose a writable folder") from None


def check_output(path: Any, *, overwrite: bool = False, inputs: Sequence[Any] = (),
                 suffixes: Optional[Sequence[str]] = None, label: str = "output",
                 expected_bytes: int = 0, directory_ok: bool = False) -> Path:
    """All checks on one output path, before any work starts.

    Parameters
    ----------
    path : path-like
        The output.
    overwrite : bool
        Whether an existing output may be replaced.
    inputs : sequence of path-like
        Every file the command reads; the output may be none of them.
    suffixes : sequence of str, optional
        Known extensions (lower case); anything else is refused.
    label : str
        What the output is, for messages ("--out", "--log-json", ...).
    expected_bytes : int
        Estimated size; refused when the file system has less free space.
    directory_ok : bool
        The output is a folder (a zarr store): an existing folder is replaced only when it
        is a zarr store.

    Returns
    -------
    Path
    """
    p = Path(path)
    if suffixes is not None and p.suffix.lower() not in suffixes:
        raise OutputError(f"{label} {p}: unknown extension {p.suffix or '(none)'!r}; use one "
                          f"of {', '.join(suffixes)}")
    check_not_input(p, inputs, label)
    if p.is_symlink() or p.exists():
        if p.is_dir() and not directory_ok:
            raise OutputError(f"{label} {p} is a folder; give a file name")
        if p.is_dir() and not _is_store(p):
            raise OutputError(f"{label} {p} is a folder that is not a zarr store; it is never "
                              "replaced: choose another output")
        if not overwrite:
            raise OutputError(f"{label} {p} exists; pass --overwrite (overwrite=True) to "
                              "replace it, or choose another name")
    folder = p.parent if p.parent.exists() else _existing_ancestor(p)
    check_writable(folder, label, p)
    if expected_bytes > 0:
        free = shutil.disk_usage(folder).free
        if free < expected_bytes * FREE_SPACE_MARGIN:
            raise OutputError(f"not enough free space for {label} {p}: it needs about "
                              f"{expected_bytes / 1e6:.1f} MB, {folder} has "
                              f"{free / 1e6:.1f} MB free; free space or write elsewhere")
    return p


def _is_store(path: Path) -> bool:
    return any((path / n).exists() for n in ("zarr.json", ".zarray", ".zgroup"))


def prepare_parent(path: Any) -> Path:
    """Create the output's parent folders (after :func:`check_output` passed)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def reserve(fd: int, nbytes: int, path: Any) -> None:
    """Allocate ``nbytes`` for an open file now, so a full disk fails here and not later
    with a bus error in a memory map."""
    try:
        os.posix_fallocate(fd, 0, nbytes)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL):  # fs cannot: nothing reserved
            return
        raise OSError(exc.errno, exc.strerror, str(path)) from None


def disk_full_error(exc: BaseException, path: Any) -> Optional[OSError]:
    """An ``ENOSPC`` error naming ``path`` when ``exc`` is a short write on a full disk
    (tifffile and zarr report those without an errno), else None."""
    if not isinstance(exc, OSError) or exc.errno not in (None, errno.ENOSPC):
        return None
    try:
        free = shutil.disk_usage(Path(path).parent).free
    except OSError:
        return None
    if exc.errno == errno.ENOSPC or free < 1024**2 or "written" in str(exc):
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return None


# ------------------------------------------------------------------------------ modes
def file_mode() -> int:
    """``0o666`` less the process umask: the mode ``open()`` would create files with."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def apply_umask(path: Any) -> None:
    """Give a file created by ``mkstemp`` (mode 0600) the usual mode."""
    try:
        os.chmod(path, file_mode())
    except OSError:
        pass


def stale_temporaries(path: Any) -> list[Path]:
    """Temporary siblings of ``path`` our writers leave when killed (not resumable stores)."""
    p = Path(path)
    if not p.parent.is_dir():
        return []
    pats = [f".{p.name}.*.part", f".{p.name}.part", f".{p.name}.part-*", f"{p.name}.*.part",
            f".{p.name}.old-*"]
    found = {f for pat in pats for f in p.parent.glob(pat)}
    return sorted(f for f in found if not f.name.endswith(".partial.zarr"))


def remove_stale_temporaries(path: Any) -> int:
    """Delete :func:`stale_temporaries` (call it holding the output's lock)."""
    n = 0
    for f in stale_temporaries(path):
        if f.is_dir() and not f.is_symlink():
            shutil.rmtree(f, ignore_errors=True)
        else:
            f.unlink(missing_ok=True)
        n += 1
    return n


# ------------------------------------------------------------------------------ locks
def lock_path(path: Any) -> Path:
    """The lock file of an output: ``.NAME.lock`` beside it."""
    p = Path(path)
    return p.with_name(f".{p.name}.lock")


class OutputLock:
    """An exclusive, crash-safe lock on one output (use as a context manager).

    Raises
    ------
    OutputError
        When another live process holds it (naming its pid, host and start time).
    """

    def __init__(self, path: Any) -> None:
        self.path = Path(path)
        self.file = lock_path(self.path)
        self._fd: Optional[int] = None

    def acquire(self) -> "OutputLock":
        import fcntl

        self.file.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(10):
            fd = os.open(self.file, os.O_RDWR | os.O_CREAT, file_mode())
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                owner = _read_owner(fd)
                os.close(fd)
                raise OutputError(
                    f"{self.path} is being written by another run ({owner}); wait for it "
                    f"to finish or choose another output (lock file {self.file})") from None
            try:  # the file may have been replaced between open and flock: retry
                if os.fstat(fd).st_ino != os.stat(self.file).st_ino:
                    os.close(fd)
                    continue
            except FileNotFoundError:
                os.close(fd)
                continue
            owner = {"pid": os.getpid(), "host": socket.gethostname(),
                     "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(owner).encode(), 0)
            self._fd = fd
            return self
        raise OutputError(f"could not lock {self.path} (lock file {self.file} keeps changing)")

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.file.unlink(missing_ok=True)
        finally:
            os.close(self._fd)  # closing releases the flock
            self._fd = None

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _read_owner(fd: int) -> str:
    try:
        raw = os.pread(fd, 4096, 0)
        owner = json.loads(raw.decode("utf-8") or "{}")
        return f"pid {owner.get('pid')} on {owner.get('host')} since {owner.get('started')}"
    except (OSError, ValueError, AttributeError):
        return "owner unknown"
