"""Reading and removing what a sandboxed child left behind, without trusting any of it.

The child runs a student's code, and everything in its working folder may have been
replaced by that code: a result file by a FIFO (opening it for reading would block
forever), a symbolic link, a device, a 3 GB sparse file, a ``.npy`` whose header
promises 10^12 elements, or a chain of 3,000 nested folders. The grader's own process
therefore:

* opens with ``O_NONBLOCK | O_NOFOLLOW`` (never blocks, never follows a link) and
  checks with ``fstat`` on the open descriptor that it is a regular file;
* bounds every read by a size cap checked *before* reading (``fstat``), and reads at
  most ``cap + 1`` bytes anyway (the file may grow);
* checks a ``.npy`` header's ``shape x itemsize`` against the bytes actually present
  before building an array, so it never allocates more than the file holds;
* removes folders iteratively (no recursion, no long paths), whatever their depth.

Every refusal raises :class:`UntrustedFile` (a ``ValueError``) with a message saying
what was expected and what was found.
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path
from typing import Union

import numpy as np

PathLike = Union[str, Path]

#: largest ``.npy`` output file the grader reads back (bytes)
MAX_NPY_BYTES = 64 * 1024 * 1024
_NUMERIC_KINDS = "biufc"


class UntrustedFile(ValueError):
    """A file left by the child is not what the grader expects (message says why)."""


def read_bounded(path: PathLike, max_bytes: int, follow_links: bool = False) -> bytes:
    """The bytes of the regular file ``path``, refusing anything over ``max_bytes``.

    Never blocks (a FIFO or device is refused after a non-blocking open), never
    follows a symbolic link unless ``follow_links`` and never reads more than
    ``max_bytes + 1`` bytes. Raises :class:`UntrustedFile` or ``OSError``.
    """
    if not isinstance(max_bytes, int) or max_bytes < 0:
        raise TypeError(f"read_bounded: max_bytes must be a non-negative int, got {max_bytes!r}")
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_links:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except OSError as err:
        if not follow_links and os.path.islink(path):
            raise UntrustedFile(f"{Path(path).name}: expected a regular file, found a symbolic link") from None
        raise err
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UntrustedFile(f"{Path(path).name}: expected a regular file, found {_kind(info.st_mode)}")
        if info.st_size > max_bytes:
            raise UntrustedFile(f"{Path(path).name}: {info.st_size:,} bytes, over the limit of {max_bytes:,}")
        chunks, left = [], max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > max_bytes:
            raise UntrustedFile(f"{Path(path).name}: grew past the limit of {max_bytes:,} bytes while read")
        return data
    finally:
        os.close(fd)


def load_npy(path: PathLike, max_bytes: int = MAX_NPY_BYTES) -> np.ndarray:
    """A numeric array from a ``.npy`` file the child wrote (never unpickles).

    The header's ``shape x itemsize`` must equal the data bytes present (so a header
    claiming more elements than the file holds is refused before any allocation),
    the dtype must be numeric (bool, int, uint, float, complex) and the file at most
    ``max_bytes``. Raises :class:`UntrustedFile` or ``OSError``.
    """
    raw = read_bounded(path, max_bytes)
    name = Path(path).name
    buf = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(buf)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(buf)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(buf)
        else:
            raise UntrustedFile(f"{name}: .npy format version {version} is not supported")
    except UntrustedFile:
        raise
    except Exception as err:  # numpy raises ValueError, SyntaxError, struct errors...
        raise UntrustedFile(f"{name}: not a valid .npy header ({type(err).__name__})") from None
    if dtype.kind not in _NUMERIC_KINDS or dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise UntrustedFile(f"{name}: expected a numeric dtype, found {dtype.str!r}")
    if not isinstance(shape, tuple) or len(shape) > 32 or any(not isinstance(n, int) or n < 0 for n in shape):
        raise UntrustedFile(f"{name}: expected a shape of at most 32 non-negative sizes, found {shape!r}")
    count = 1
    for n in shape:
        count *= n  # Python ints: no overflow
    data = raw[buf.tell():]
    if count * dtype.itemsize != len(data):
        raise UntrustedFile(
            f"{name}: header promises {count:,} x {dtype.itemsize} bytes, the file holds {len(data):,} bytes of data"
        )
    array = np.frombuffer(data, dtype=dtype, count=count).reshape(shape, order="F" if fortran else "C")
    return array.astype(dtype.newbyteorder("="), order="C", copy=True)  # native, writable, contiguous


def remove_tree(path: PathLike) -> None:
    """Delete ``path`` and everything under it, iteratively and without long paths.

    Each sub-folder met is first moved up to sit directly under ``path`` (a rename
    relative to open folder descriptors), so the depth of what the child left
    (3,000 nested folders, or paths longer than ``PATH_MAX``) costs neither recursion
    nor path length. Links are removed, never followed. A missing ``path`` is fine.
    Folders made unreadable are given back their permissions first (the grader owns
    them or is root).
    """
    path = os.fspath(path)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode):
        os.unlink(path)
        return
    top = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        pending = [None]  # None: the top folder itself; else a name directly under it
        serial = 0
        while pending:
            name = pending[-1]
            if name is None:
                fd = os.dup(top)
            else:
                try:
                    os.chmod(name, 0o700, dir_fd=top, follow_symlinks=False)
                except OSError:
                    pass
                fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=top)
            moved = False
            try:
                with os.scandir(fd) as entries:
                    listing = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
                for entry, is_dir in listing:
                    if is_dir and name is None:
                        pending.append(entry)  # already directly under the top folder
                        moved = True
                    elif is_dir:
                        serial += 1
                        flat = f".rm-{serial}"
                        while _exists(flat, top):
                            serial += 1
                            flat = f".rm-{serial}"
                        os.rename(entry, flat, src_dir_fd=fd, dst_dir_fd=top)
                        pending.append(flat)
                        moved = True
                    else:
                        os.unlink(entry, dir_fd=fd)
            finally:
                os.close(fd)
            if moved:
                continue  # empty the moved folders first; come back to this one after
            pending.pop()
            if name is not None:
                os.rmdir(name, dir_fd=top)
    finally:
        os.close(top)
    os.rmdir(path)


def _exists(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return True
    except FileNotFoundError:
        return False


def _kind(mode: int) -> str:
    for test, word in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISLNK, "a link")):
        if test(mode):
            return word
    return "something that is not a regular file"
