"""File operations that never lose a file: atomic text writes, moves and creates that refuse to replace, a lock.

The original auto-labeller deleted an image whenever its new name was taken.
Everything here that renames or creates a file fails (or picks another name)
instead of replacing what is there. Standard library only.
"""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import LabelError, MissingFileError


def file_digest(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's bytes, in hex: what a file holds, whatever it is named."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_text_atomically(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` so that a reader sees the old content or the new, never half.

    The text goes to a temporary file in the same folder, is flushed to disk,
    and then replaces ``path`` in one step; a crash mid-write leaves the old file.
    """
    path = Path(path)
    handle = tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", newline="", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    )
    try:
        with handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


@contextmanager
def exclusive_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created empty if missing) for the ``with`` block.

    Read-modify-write of a shared file goes inside it: every process (and every
    thread, each ``with`` opens the file anew) that locks the same path waits
    for the holder. The kernel drops the lock when its holder exits, even
    killed, so a crash never leaves it held. POSIX only (``fcntl.flock``).
    """
    import fcntl  # here, not at the top: the rest of this module works where fcntl does not exist

    with open(path, "a") as handle:  # "a" creates the file and never truncates it
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def move_without_replacing(source: Path, target: Path) -> None:
    """Rename ``source`` to ``target``, failing if ``target`` exists: never overwrites, never deletes.

    A hard link is made first (``link`` refuses an existing target, atomically)
    and only then is the old name removed, so at every moment the file has at
    least one name.

    Raises:
        FileExistsError: ``target`` already exists (nothing changed).
        MissingFileError: ``source`` does not exist.
        LabelError: the file system cannot make hard links (use a manifest instead).
    """
    try:
        os.link(source, target)
    except FileNotFoundError:
        raise MissingFileError(f"no such file: {source}") from None
    except OSError as error:
        if isinstance(error, FileExistsError):
            raise
        if error.errno in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise LabelError(
                f"cannot rename {source.name} without risking an overwrite here ({error.strerror}); "
                "write labels.csv instead of renaming"
            ) from None
        raise
    source.unlink()


def move_to_free_name(source: Path, names: Callable[[], Iterator[str]]) -> Path:
    """Move ``source`` to the first name from ``names()`` that is free in its folder; return the new path.

    Raises:
        MissingFileError, LabelError: as :func:`move_without_replacing`.
    """
    for name in names():
        target = source.with_name(name)
        try:
            move_without_replacing(source, target)
        except FileExistsError:
            continue
        return target
    raise LabelError(f"no free name for {source.name}")


def create_exclusively(folder: Path, names: Iterator[str], data: bytes) -> Path:
    """Write ``data`` to the first name from ``names`` that does not exist in ``folder``; return its path.

    Each candidate is opened with ``x`` (exclusive create), so a file that
    appears between the check and the write is never replaced.

    Raises:
        LabelError: ``names`` ran out before a free name turned up.
    """
    for name in names:
        path = folder / name
        try:
            with open(path, "xb") as file:
                file.write(data)
        except FileExistsError:
            continue
        return path
    raise LabelError(f"no free file name in {folder}")
