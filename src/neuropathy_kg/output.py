"""Writing files safely: the one atomic writer of the package (``--output`` of every command, the release
and documentation files).

A file is written to a temporary file in its own folder, flushed to disk and renamed over the target,
so the target is whole or untouched. Before anything is written the target is refused (OutputError,
one line) when it

- is an input: the same path (after symlinks), the same device and inode (a hard link), any file found
  inside an input folder (symlinks followed, as the readers follow them), or standard input's file;
- lies inside an input folder (a later run would read it as an input);
- exists and is not a regular file (a FIFO, a device such as /dev/null, a socket): renaming over it
  would replace the node itself.

An existing target keeps its permission bits (and, where the process may, its owner). A write error
(disk full, quota, file size limit) is one line; the temporary file is removed and the old file stays.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Iterator, TextIO


class OutputError(Exception):
    """The output cannot or must not be written; ``str(error)`` is the one line shown, naming the file."""


_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _reason(error: OSError) -> str:
    return error.strerror or type(error).__name__


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _folder_clash(folder: str, real: str, target: os.stat_result | None) -> str | None:
    """The file in ``folder`` (recursively, symlinks followed once per folder) that is the target, or a
    symlinked folder the target lies in. os.scandir gives each entry's inode without a stat call, so only
    symlinks and inode matches cost one: 10^5 files take a fraction of a second."""
    seen: set[tuple[int, int]] = set()
    pending = [folder]
    while pending:
        current = pending.pop()
        try:
            info = os.stat(current)
            if (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            entries = list(os.scandir(current))
        except OSError:
            continue  # unreadable folders are the readers' to report
        for entry in entries:
            try:
                if entry.is_symlink():
                    try:
                        found = entry.stat()
                    except OSError:  # a dangling link: it names the target if it resolves to its path
                        if os.path.realpath(entry.path) == real:
                            return entry.path
                        continue
                    if stat.S_ISDIR(found.st_mode):
                        if _inside(real, os.path.realpath(entry.path)):
                            return entry.path
                        pending.append(entry.path)
                    elif target is not None and _same(found, target):
                        return entry.path
                elif entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                elif target is not None and entry.inode() == target.st_ino and _same(entry.stat(follow_symlinks=False), target):
                    return entry.path
            except OSError:
                continue
    return None


def refuse_unsafe(path: Path, inputs: Iterable[str] = ()) -> os.stat_result | None:
    """Raise OutputError if ``path`` must not be written (see the module's docstring); else the stat of
    the existing file it replaces, or None when it does not exist yet."""
    real = os.path.realpath(path)
    try:
        target = os.stat(real)
    except FileNotFoundError:
        target = None
    except OSError as error:
        raise OutputError(f"{path}: cannot write output ({_reason(error)})") from None
    if target is not None and not stat.S_ISREG(target.st_mode):
        raise OutputError(f"{path}: is {_kind(target.st_mode)}, not a regular file; --output writes regular files only "
                          "(give a file path, or leave --output out to write to standard output)")
    for raw in inputs:
        if raw == "-":
            with contextlib.suppress(OSError):
                if target is not None and _same(os.fstat(0), target):
                    raise OutputError(f"{path}: is standard input, one of the inputs; nothing is ever written to an input file")
            continue
        try:
            given = os.stat(raw)
        except OSError:  # missing or dangling: the readers report it; a dangling link may still name the target
            if os.path.realpath(raw) == real:
                raise OutputError(f"{path}: is one of the inputs ({raw}); nothing is ever written to an input file") from None
            continue
        if stat.S_ISDIR(given.st_mode):
            if _inside(real, os.path.realpath(raw)):
                if target is not None:
                    raise OutputError(f"{path}: is one of the inputs ({real}, in the input folder {raw}); "
                                      "nothing is ever written to an input file")
                raise OutputError(f"{path}: lies inside the input folder {raw}, whose files are all inputs; "
                                  "write the output elsewhere")
            clash = _folder_clash(raw, real, target)
            if clash is not None:
                raise OutputError(f"{path}: is one of the inputs ({clash}, in the input folder {raw}); "
                                  "nothing is ever written to an input file")
        elif os.path.realpath(raw) == real or (target is not None and _same(given, target)):
            raise OutputError(f"{path}: is one of the inputs ({raw}); nothing is ever written to an input file")
    return target


class _Guarded:
    """A text handle whose write errors are OutputError (one line naming the file) instead of OSError."""

    def __init__(self, handle: TextIO, name: str) -> None:
        self._handle, self._name = handle, name

    def _failed(self, error: OSError) -> OutputError:
        return OutputError(f"{self._name}: cannot write output ({_reason(error)})")

    def write(self, text: str) -> int:
        try:
            return self._handle.write(text)
        except BrokenPipeError:
            raise
        except OSError as error:
            raise self._failed(error) from None

    def flush(self) -> None:
        try:
            self._handle.flush()
        except BrokenPipeError:
            raise
        except OSError as error:
            raise self._failed(error) from None


class _Descriptor(_Guarded):
    """Standard output written to its file descriptor until every byte is out. With PYTHONUNBUFFERED set
    (common in containers) sys.stdout sits on a raw file that TextIOWrapper writes once, ignoring a
    short write: onto a full disk a document was cut off silently and the run exited 0 (observed with
    RLIMIT_FSIZE: 3,000 of 20,000 bytes written, no error)."""

    def __init__(self, handle: TextIO, descriptor: int) -> None:
        super().__init__(handle, "standard output")
        self._descriptor = descriptor

    def write(self, text: str) -> int:
        try:
            self._handle.flush()
            data = memoryview(text.encode(self._handle.encoding or "utf-8", self._handle.errors or "strict"))
            while data:
                data = data[os.write(self._descriptor, data):]
        except BrokenPipeError:
            raise
        except OSError as error:
            raise self._failed(error) from None
        return len(text)


@contextlib.contextmanager
def standard_output(stream: TextIO) -> Iterator[TextIO]:
    """Standard output with write errors (a redirect onto a full disk) as OutputError; a closed pipe
    (`| head`) stays BrokenPipeError, which click ends quietly."""
    try:
        guarded = _Descriptor(stream, stream.fileno())
    except (OSError, ValueError, AttributeError):  # not a file (a test runner's buffer)
        guarded = _Guarded(stream, "standard output")
    yield guarded  # type: ignore[misc]
    guarded.flush()


@contextlib.contextmanager
def atomic_file(path: Path, inputs: Iterable[str] = (), binary: bool = False) -> Iterator[TextIO]:
    """A handle onto ``path``, replacing it whole when the block ends without an exception, never otherwise
    (an exception, SIGINT or SIGTERM as SystemExit: the temporary file is removed, the old file stays).
    Refused first by refuse_unsafe."""
    existing = refuse_unsafe(path, inputs)
    target = Path(os.path.realpath(path))  # a symlinked output: the link stays, its target is replaced
    try:
        descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as error:
        raise OutputError(f"{path}: cannot write output ({_reason(error)})") from None
    try:
        try:
            if existing is not None:
                os.fchmod(descriptor, stat.S_IMODE(existing.st_mode))
                with contextlib.suppress(OSError):  # only root (or the owner, for the group) may
                    os.fchown(descriptor, existing.st_uid, existing.st_gid)
            else:
                umask = os.umask(0)
                os.umask(umask)
                os.fchmod(descriptor, 0o666 & ~umask)
        except OSError as error:
            os.close(descriptor)
            raise OutputError(f"{path}: cannot write output ({_reason(error)})") from None
        handle = os.fdopen(descriptor, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"}))
        try:
            with handle:
                yield _Guarded(handle, str(path))  # type: ignore[misc]
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
            with contextlib.suppress(OSError):  # the rename itself to disk (not every file system allows it)
                folder = os.open(target.parent, os.O_RDONLY)
                try:
                    os.fsync(folder)
                finally:
                    os.close(folder)
        except OSError as error:
            raise OutputError(f"{path}: cannot write output ({_reason(error)})") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def write_atomically(path: Path, data: bytes, inputs: Iterable[str] = ()) -> None:
    """Write ``data`` to ``path`` through atomic_file."""
    with atomic_file(path, inputs, binary=True) as handle:
        handle.write(data)  # type: ignore[arg-type]


def stop_cleanly_on_signals() -> Callable[[], None]:
    """SIGINT and SIGTERM become SystemExit(130 / 143) in the main thread, so that every ``finally`` and
    context manager runs (the atomic writer removes its temporary file, a run stops its workers and
    removes its spool folder) and the exit status is the shell's 128 + signal number, without a
    traceback. The first signal wins: the same signals are ignored while cleaning up. SIGXFSZ (a file
    size limit reached) is ignored, so that the write fails with EFBIG and is reported in one line
    instead of killing the process with a core dump. Returns the call that puts the previous handlers back."""
    def stop(signum: int, _frame) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise SystemExit(128 + signum)

    names = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGXFSZ] if hasattr(signal, "SIGXFSZ") else [])
    previous = {number: signal.getsignal(number) for number in names}
    for number in names:
        signal.signal(number, signal.SIG_IGN if number not in (signal.SIGINT, signal.SIGTERM) else stop)

    def restore() -> None:
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)
    return restore
