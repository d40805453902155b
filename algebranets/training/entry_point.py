"""`run(main)`: `absl.app.run` for the entry points, with one-line errors.

Every user mistake and every operational fault an entry point can meet ends
in ONE line on stderr saying what is wrong and how to fix it, and exit code
1, never a traceback:

  * flag parsing, including what `ml_collections.config_flags` raises while
    parsing (a misspelled `--config.a.b` override, an unknown config-file
    arg, a syntax error in or a missing config file, a bad value);
  * the harness's own errors (`USER_ERRORS`: config, checkpoint, non-finite
    training, preemption, workdir in use, data);
  * OS errors (read-only directory, full disk, missing file), with a hint.

Anything else is a bug and keeps its traceback. Set ALGEBRANETS_TRACEBACK=1
to see the traceback of a reported error too.

The process always exits: when a library thread is stuck on a failed
operation (orbax waits up to 300 s for a signal from a thread that died),
the error is printed and the process ends with `os._exit`.
"""

from __future__ import annotations

import errno
import os
import re
import sys
import threading
from collections.abc import Callable, Sequence

import jax
from absl import app, flags
from ml_collections import config_flags

from algebranets.training import (
    checkpointing,
    config_lib,
    sharding,
    trainer,
    workdir_lock,
)

# Errors whose message already says what is wrong and what to do.
USER_ERRORS: tuple[type[BaseException], ...] = (
    config_lib.ConfigError,
    sharding.DeviceCountError,
    sharding.ClusterError,
    checkpointing.CheckpointError,
    trainer.NonFiniteError,
    trainer.PreemptedError,
    workdir_lock.WorkdirInUseError,
)

_TRACEBACK_ENV = "ALGEBRANETS_TRACEBACK"


class _FlagError(Exception):
  """A command line that could not be parsed; the message is the one line."""


def _chain(err: BaseException) -> list[BaseException]:
  """`err` and its causes/contexts, outermost first."""
  out, seen = [], set()
  while err is not None and id(err) not in seen:
    seen.add(id(err))
    out.append(err)
    err = err.__cause__ or err.__context__
  return out


def _one_line(text: str) -> str:
  return " ".join(str(text).split())


def os_hint(err: OSError) -> str:
  """What to do about an OS error, by errno ('' if nothing specific)."""
  if err.errno == errno.ENOSPC:
    return " The disk is full: free space, then rerun the same command."
  if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
    return (
        " The path is not writable (read-only or owned by another user): "
        "make it writable or choose another --workdir."
    )
  if err.errno == errno.ENOENT:
    return " Check the path."
  return ""


def _job_failure(err: BaseException) -> str | None:
  """A runtime error of a multi-process job: another process is gone."""
  if not isinstance(err, jax.errors.JaxRuntimeError):
    return None
  try:
    n = jax.process_count()
  except Exception:  # the runtime itself is broken
    return None
  if n < 2:
    return None
  text = _one_line(err)
  if len(text) > 300:
    text = text[:300] + " ..."
  return (
      f"JobError: process {jax.process_index()} of this {n}-process job "
      f"stopped: another process died or is unreachable "
      f"({type(err).__name__}: {text}). Every checkpoint saved so far is "
      f"kept; restart all {n} processes with the same command to resume."
  )


def describe(err: BaseException) -> str | None:
  """The one-line report of a user-facing error; None for anything else."""
  if isinstance(err, USER_ERRORS):
    return f"{type(err).__name__}: {err}"
  if isinstance(err, OSError):
    return f"{type(err).__name__}: {err}.{os_hint(err)}"
  return _job_failure(err)


def _override_arg(argv: Sequence[str], key: str) -> str:
  """The --config.x.y=... argument that mentions the field `key`."""
  for arg in argv:
    name = arg.split("=", 1)[0]
    if name.startswith("--") and key in name.lstrip("-").split(".")[1:]:
      return arg
  return "a --config.* override"


def _flag_message(err: BaseException, argv: Sequence[str]) -> str:
  """One line for an exception raised while parsing the command line."""
  chain = _chain(err)
  for e in chain:
    if isinstance(e, OSError) and "Failed loading config file" in str(e):
      return _load_failure(e)
  for e in reversed(chain):  # innermost first: the real cause
    if isinstance(e, config_lib.ConfigError) and "Traceback" not in str(e):
      return f"ConfigError: {_one_line(e)}"
  for e in chain:
    if isinstance(e, SyntaxError):
      return (
          f"Config file {e.filename}, line {e.lineno}: "
          f"{type(e).__name__}: {e.msg}. Fix the file."
      )
  missing = [e for e in chain if isinstance(e, (KeyError, AttributeError))]
  if missing:
    # config_flags raises KeyError(field) for an unknown override field and
    # wraps it (twice) with a "Did you mean" text.
    name = str(missing[-1].args[0]) if missing[-1].args else "?"
    hint = None
    for e in missing:
      hint = hint or re.search(r'Did you mean "([^"]+)"', str(e))
    return (
        f"{_override_arg(argv, name)}: the config has no field {name!r}."
        + (f' Did you mean "{hint.group(1)}"?' if hint else "")
        + " Fix the override (the config file lists the fields)."
    )
  first = chain[0]
  if isinstance(first, flags.Error) and "Traceback" not in str(first):
    return f"{_one_line(first)} (see --helpshort)"
  inner = chain[-1]
  return f"Bad command line: {type(inner).__name__}: {_one_line(inner)}"


def _config_files() -> list[tuple[str, str]]:
  """(flag name, config file path) of every config-file flag."""
  out = []
  for name in list(flags.FLAGS):
    try:
      out.append((name, config_flags.get_config_filename(flags.FLAGS[name])))
    except (TypeError, AttributeError):  # not a config flag, or no value
      continue
  return out


def _load_failure(err: BaseException) -> str:
  """One line for a config file that could not be loaded."""
  for name, arg in _config_files():
    # The flag's value is 'path/to/file.py[:config args]'.
    path = re.sub(r"(\.py):.*$", r"\1", arg or "")
    if path and not os.path.isfile(path):
      return (
          f"--{name}={path}: no such config file (relative paths start at "
          f"{os.getcwd()})."
      )
  missing = re.search(r"No such file or directory: '([^']+)'", str(err))
  if missing:
    return f"{missing.group(1)}: no such config file (relative paths start at {os.getcwd()})."
  lines = [ln for ln in str(err).splitlines() if ln.strip()]
  return f"Cannot load the config file: {_one_line(lines[-1])}"


def _check_config_flags() -> None:
  """config_flags defers a failed config-file load to the first access."""
  for name, _ in _config_files():
    value = flags.FLAGS[name].value
    if value is None:
      continue
    try:
      value.keys  # noqa: B018 (any attribute of a failed load raises)
    except OSError as e:
      raise _FlagError(_load_failure(e)) from None


def _parse_flags(argv: list[str]) -> list[str]:
  try:
    rest = flags.FLAGS(argv)
    _check_config_flags()
  except _FlagError:
    raise
  except Exception as e:
    raise _FlagError(_flag_message(e, argv)) from None
  return rest


def _exit(message: str, code: int = 1) -> None:
  print(message, file=sys.stderr, flush=True)
  sys.stdout.flush()
  stuck = [
      t
      for t in threading.enumerate()
      if t is not threading.main_thread() and t.is_alive() and not t.daemon
  ]
  # Python would wait for stuck threads at exit, and may never return; in a
  # multi-process job JAX's exit handler waits in a shutdown barrier for the
  # other processes, which aborts with pages of logs when one of them died.
  if stuck or _in_job():
    os._exit(code)
  raise SystemExit(code)


def _in_job() -> bool:
  try:
    return jax.distributed.is_initialized()
  except Exception:
    return False


def run(
    main: Callable[[list[str]], None],
    *,
    user_errors: tuple[type[BaseException], ...] = (),
) -> None:
  """`app.run(main)`, reporting user errors as one line (exit code 1).

  Args:
    main: the absl main function.
    user_errors: more exception types whose message is the whole report
      for this entry point (e.g. ValueError for scripts.sweep).
  """
  try:
    app.run(main, flags_parser=_parse_flags)
  except _FlagError as e:
    _exit(str(e))
  except Exception as e:
    if os.environ.get(_TRACEBACK_ENV):
      raise
    message = describe(e)
    if message is None and isinstance(e, user_errors):
      message = f"{type(e).__name__}: {e}"
    if message is None:
      raise
    _exit(message)
