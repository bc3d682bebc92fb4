"""Where the emulated S3 keeps object bodies: small ones in memory, larger ones in files.

moto keeps each object's body in a ``tempfile.SpooledTemporaryFile`` of 5 MB: everything
smaller stays in the process's memory. A training run writes every weights version, optimizer
state and micro-batch gradient as objects of a few hundred kB to a few MB (about 6.6 MB per
fused step of a 784-256-128-10 network, 4 workers), all kept (weights are immutable, scratch
expires after a day): an epoch over a million rows would hold about 10 GB in the engine's
process, where S3 keeps them on disk. A larger body rolling over to an anonymous temporary file
would hold one open file descriptor per object instead (the process's limit is 20,000 here).

:class:`SpilledBody` is the buffer moto writes and reads through (``seek``, ``read``, ``write``,
``truncate``, ``close``): in memory up to ``memory_bytes``, beyond that in a file of its own
under one directory per process, opened only while it is read or written. Closing the buffer
(moto disposes of a replaced or deleted key so) removes its file; the directory goes when the
process exits.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import shutil
import tempfile
import threading
import weakref
from pathlib import Path
from typing import Final

MEMORY_BYTES: Final = 256 * 2**10  # a larger body goes to a file

_directory: Path | None = None
_directory_lock = threading.Lock()


def spill_directory() -> Path:
    """This process's directory of spilled bodies (made on first use, removed at exit)."""
    global _directory
    with _directory_lock:
        if _directory is None:
            _directory = Path(tempfile.mkdtemp(prefix=f"stepnet-s3-{os.getpid()}-"))
            atexit.register(shutil.rmtree, _directory, ignore_errors=True)
        return _directory


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class SpilledBody:
    """A seekable byte buffer: in memory while at most ``memory_bytes`` long, in a file after
    (the file stays while the buffer lives, with no descriptor held between calls)."""

    def __init__(self, max_size: int = 0, *_: object, memory_bytes: int = MEMORY_BYTES) -> None:
        # ``max_size``: moto's own threshold for SpooledTemporaryFile, superseded by ours
        self.memory_bytes = memory_bytes
        self._memory: io.BytesIO | None = io.BytesIO()
        self._path: str | None = None
        self._position = 0
        self._size = 0
        self.closed = False
        self._finalizer: weakref.finalize[[str], None] | None = None  # removes the file

    @property
    def spilled(self) -> bool:
        return self._path is not None

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def tell(self) -> int:
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        self._check_open()
        end = self._size if size is None or size < 0 else min(self._size, self._position + size)
        if end <= self._position:
            return b""
        if self._memory is not None:
            data = self._memory.getbuffer()[self._position : end].tobytes()
        else:
            assert self._path is not None
            with open(self._path, "rb") as file:
                file.seek(self._position)
                data = file.read(end - self._position)
        self._position += len(data)
        return data

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._check_open()
        if not data:
            return 0  # as a file: no padding up to the position
        if self._memory is not None and max(self._size, self._position + len(data)) > (
            self.memory_bytes
        ):
            self._spill()
        if self._memory is not None:
            self._memory.seek(self._position)
            written = self._memory.write(data)
        else:
            assert self._path is not None
            with open(self._path, "r+b") as file:
                file.seek(self._position)
                written = file.write(data)
        self._position += written
        self._size = max(self._size, self._position)
        return written

    def truncate(self, size: int | None = None) -> int:
        self._check_open()
        size = self._position if size is None else size
        kept = min(self._size, size)  # truncating never extends (the size asked is returned)
        if self._memory is not None:
            self._memory.truncate(kept)
        else:
            assert self._path is not None
            os.truncate(self._path, kept)
        self._size = kept
        return size

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._memory = None
        if self._finalizer is not None:
            self._finalizer()  # removes the file

    def _spill(self) -> None:
        assert self._memory is not None
        descriptor, path = tempfile.mkstemp(dir=spill_directory(), prefix="body-")
        with os.fdopen(descriptor, "wb") as file:
            file.write(self._memory.getbuffer()[: self._size])
        self._path, self._memory = path, None
        self._finalizer = weakref.finalize(self, _remove, path)  # type: ignore[arg-type]

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file.")  # as a closed file says
