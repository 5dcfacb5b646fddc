"""Output folders that never lose a user's files and never show a half-written frame.

- A folder that already holds files is refused unless the user asked to overwrite.
- A lock file stops two jobs writing into the same folder at once.
- Each file is written under a temporary name and renamed when complete.
- PNG encoding runs on a writer thread, overlapped with the next batch's compute; at most a
  few frames wait in its queue, so memory stays flat however long the clip.
- If the job fails, the files it wrote are removed (and the folder, if the job made it).
"""
import os
import shutil
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .. import protocol
from ..errors import PSCError
from .images import write_png

LOCK_NAME = ".psc-lock"


def _visible_entries(path):
    return [p for p in path.iterdir() if not p.name.startswith(".")]


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class OutputDir:
    """Use as a context manager: `with OutputDir(path, overwrite) as out: out.write_png(name, array)`."""

    def __init__(self, path, overwrite=False, max_pending=4):
        self.path = Path(path)
        self.overwrite = overwrite
        self.max_pending = max_pending
        self.created = False
        self.written = []
        self.reported = 0  # how many of `written` completed()/flush() have returned
        self.pending = deque()
        self.pool = None

    def __enter__(self):
        if self.path.exists() and not self.path.is_dir():
            raise PSCError("output path exists and is not a folder", self.path)
        if self.path.is_dir() and _visible_entries(self.path) and not self.overwrite:
            raise PSCError("output folder already holds files; pass --overwrite or choose another folder", self.path)
        if not self.path.exists():
            try:
                self.path.mkdir(parents=True)
            except OSError as e:
                raise PSCError(f"cannot create output folder ({e.strerror})", self.path) from None
            self.created = True
        self._lock()
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="psc-writer")
        return self

    def _lock(self):
        lock = self.path / LOCK_NAME
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    pid = int(lock.read_text().strip() or 0)
                except (OSError, ValueError):
                    pid = 0
                if pid and _pid_alive(pid) and pid != os.getpid():
                    raise PSCError(f"another job (pid {pid}) is writing into this folder; wait for it or "
                                   "choose another folder", self.path) from None
                lock.unlink(missing_ok=True)  # stale: its job is gone
                continue
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            return
        raise PSCError("cannot take the folder's lock file", lock)

    def write_png(self, name, array):
        """Queue one PNG; returns its final path. Blocks while max_pending writes are waiting."""
        path = self.path / name
        self.pending.append((path, self.pool.submit(write_png, path, array)))
        while len(self.pending) > self.max_pending:
            self._finish_one()
        return path

    def _finish_one(self):
        path, fut = self.pending.popleft()
        try:
            fut.result()
        except OSError as e:
            raise PSCError(f"cannot write frame ({e.strerror or e})", path) from None
        self.written.append(path)
        return path

    def completed(self):
        """The paths whose writes finished since the last call, in order, without waiting for the rest."""
        while self.pending and self.pending[0][1].done():
            self._finish_one()
        return self._new()

    def flush(self):
        """Wait for every queued write; returns the paths finished since the last call, in order."""
        while self.pending:
            self._finish_one()
        return self._new()

    def _new(self):
        new, self.reported = self.written[self.reported:], len(self.written)
        return new

    def __exit__(self, exc_type, exc, tb):
        failed = exc_type is not None
        try:
            if not failed:
                self.flush()
        except BaseException:
            failed = True
            raise
        finally:
            for _, fut in self.pending:
                fut.cancel()
            self.pool.shutdown(wait=True)
            if failed:
                self._cleanup()
            (self.path / LOCK_NAME).unlink(missing_ok=True)
        return False

    def _cleanup(self):
        """Remove what this job wrote (all of the folder if it made it)."""
        if self.created:
            shutil.rmtree(self.path, ignore_errors=True)
            return
        for p in self.written + [p for p, _ in self.pending]:
            p.unlink(missing_ok=True)
        for p in self.path.glob(".*.partial"):
            p.unlink(missing_ok=True)


def write_frames(chunks, path, overwrite=False, on_frame=None, name=protocol.FRAME_NAME):
    """Write a Pipeline.stream's chunks as numbered PNGs into the OutputDir `path`; computing the
    next chunk overlaps with encoding this one. on_frame(path) is called as each frame lands, in
    order. Returns the number of frames written."""
    count = 0
    with OutputDir(path, overwrite) as out:
        for chunk in chunks:
            for i, img in enumerate(chunk.images):
                out.write_png(name.format(chunk.start + i + 1), img)
            for done in out.completed():
                count += 1
                if on_frame:
                    on_frame(done)
        for done in out.flush():
            count += 1
            if on_frame:
                on_frame(done)
    return count
