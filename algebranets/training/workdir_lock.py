"""A per-job lock on a training workdir, so two trainers never share one.

Two trainers writing one workdir interleave their metric rows and overwrite
each other's checkpoints and `final_metrics.json`. `WorkdirLock` takes an
exclusive `fcntl.flock` on `<workdir>/.lock`: the kernel releases it when the
holding process ends, however it ends (SIGKILL included), so a crashed run
never leaves the workdir locked. The file keeps the holder's pid, host and
start time, to name it in the error of the next trainer; it is never deleted
(deleting a lock file races with the next process opening it).

The lock is per job: in a multi-process job only process 0 takes it (the
other processes write nothing to the workdir). On systems without `fcntl`
(Windows) no lock is taken.
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import socket

try:
  import fcntl
except ImportError:  # pragma: no cover (Windows)
  fcntl = None

LOCK_FILE = ".lock"


class WorkdirInUseError(RuntimeError):
  """Another live process holds the workdir's lock."""


class WorkdirLock:
  """Exclusive lock of a workdir for the life of a training run.

  Example::

    with WorkdirLock(workdir):
      ...  # train; a second trainer raises WorkdirInUseError meanwhile
  """

  def __init__(self, workdir: str | os.PathLike, *, enabled: bool = True):
    """Args: workdir: the directory (created if missing); enabled: False on
    processes other than 0 of a multi-process job (the lock is per job)."""
    self._path = pathlib.Path(workdir) / LOCK_FILE
    self._enabled = enabled and fcntl is not None
    self._fd: int | None = None

  def acquire(self) -> None:
    """Takes the lock.

    Raises:
      WorkdirInUseError: another process holds it.
    """
    if not self._enabled or self._fd is not None:
      return
    self._path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = _describe_holder(fd)
      os.close(fd)
      raise WorkdirInUseError(
          f"{self._path.parent} is in use by another trainer ({holder}). "
          "Wait for it to finish or stop it, or pass another --workdir."
      ) from None
    except OSError:
      os.close(fd)
      raise
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.datetime.now().astimezone().isoformat("T", "seconds"),
    }
    os.ftruncate(fd, 0)
    os.write(fd, (json.dumps(info) + "\n").encode())
    self._fd = fd

  def release(self) -> None:
    """Releases the lock (idempotent); process exit releases it too."""
    if self._fd is None:
      return
    fcntl.flock(self._fd, fcntl.LOCK_UN)
    os.close(self._fd)
    self._fd = None

  def __enter__(self) -> WorkdirLock:
    self.acquire()
    return self

  def __exit__(self, *exc_info) -> None:
    self.release()


def _describe_holder(fd: int) -> str:
  try:
    info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    return f"pid {info['pid']} on {info['host']}, running since {info['since']}"
  except (OSError, ValueError, KeyError, TypeError):
    return "holder unknown"
