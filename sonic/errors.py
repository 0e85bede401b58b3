"""The errors a user can fix, and the exit codes every entry point gives (``sonic_demo.py``, ``sonic_preprocess.py``,
``sonic_training.py`` and their console scripts).

Exit codes: 0 success; 2 a user error (a bad option, a missing or unusable file, an output that cannot be written),
printed as ``error: message`` without a traceback; 1 an internal error (a bug), printed with its traceback; 130 / 143
interrupted by SIGINT / SIGTERM. This module imports nothing heavy, so that an entry point can report a bad option
before torch is loaded.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import Any


class UserError(Exception):
    """Something the user can fix; the message names the file or option and the reason."""


class MediaError(UserError, ValueError):
    """An input file cannot be used; the message names the file and the reason."""


class CheckpointError(UserError, RuntimeError):
    """A checkpoint folder or file is missing, unreadable or does not match the model."""


class WeightError(CheckpointError):
    """An evaluation network's weight file exists but cannot be used (wrong checksum, not the expected format)."""


class DatasetError(UserError, ValueError):
    """A training dataset is missing, unfinished or holds no usable clip; the message says how to make or fix it."""


class OutputError(UserError):
    """An output cannot be written: no space left, a file-size limit, a quota, a read-only folder; one line,
    ``cannot write PATH: reason``."""


NO_SPACE = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS})  # only writes fail with these


def causes(error: BaseException) -> Iterator[BaseException]:
    """``error`` and the errors it was raised from (``raise ... from`` or during handling), innermost last."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        yield cause
        cause = cause.__cause__ or cause.__context__


def os_error_code(error: BaseException) -> int | None:
    """The errno of an ``OSError`` (PyAV's are ones), or the ``(os error N)`` that Rust libraries such as safetensors
    put in their messages; None when ``error`` carries neither."""
    if isinstance(error, OSError) and error.errno is not None:
        return error.errno
    found = re.search(r"\(os error (\d+)\)", str(error))
    return int(found.group(1)) if found else None


def output_error(error: BaseException, path: object) -> OutputError | None:
    """``error`` as an :class:`OutputError` naming ``path`` when it, or an error it came from, is a failed write
    (an errno of :data:`NO_SPACE`); None for anything else."""
    for cause in causes(error):
        code = os_error_code(cause)
        if code in NO_SPACE:
            return OutputError(f"cannot write {path}: {os.strerror(code)}")
    return None


class ConfigError(UserError, ValueError):
    """A configuration value a user gave is invalid (message names the field)."""


class AnnotationError(UserError):
    """A dataset annotation file that cannot be read as its recipe's format (the message names the file and row)."""


class AnnotationMismatch(MediaError):
    """A raw video does not fit its annotation (a span after its end, a window outside its frame): often another
    version of the video than the one annotated."""


class DatasetWriteError(OutputError, RuntimeError):
    """The dataset folder cannot be written; the message is one line, ``cannot write PATH: reason``."""


class DatasetBusyError(UserError, RuntimeError):
    """Another run holds the lock of the same dataset shard (a shard started twice, a retried cluster job)."""


USER_ERRORS = (UserError, FileNotFoundError)


class Terminated(BaseException):
    """SIGTERM, raised like KeyboardInterrupt for SIGINT, so that writers remove their temporary files."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated


def run_entry_point(work: Callable[[], int | None]) -> int:
    """Runs an entry point's ``work`` (after its arguments are parsed) and returns the process exit code: ``work``'s
    own code (None = 0), or 2 / 1 / 130 / 143 after printing the error as the module docstring says."""
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return work() or 0
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("terminated", file=sys.stderr)
        return 143
    except Exception:
        traceback.print_exc()
        print("error: internal error; the traceback above is worth a bug report", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
