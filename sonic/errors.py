"""The errors a user can fix, and the exit codes every entry point gives (``sonic_demo.py``, ``sonic_preprocess.py``,
``sonic_training.py`` and their console scripts).

Exit codes: 0 success; 2 a user error (a bad option, a missing or unusable file, an output that cannot be written),
printed as ``error: message`` without a traceback; 1 an internal error (a bug), printed with its traceback; 130 / 143
interrupted by SIGINT / SIGTERM. This module imports nothing heavy, so that an entry point can report a bad option
before torch is loaded.
"""

from __future__ import annotations

import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any


class UserError(Exception):
    """Something the user can fix; the message names the file or option and the reason."""


class MediaError(UserError, ValueError):
    """An input file cannot be used; the message names the file and the reason."""


class CheckpointError(UserError, RuntimeError):
    """A checkpoint folder or file is missing, unreadable or does not match the model."""


class DatasetError(UserError, ValueError):
    """A training dataset is missing, unfinished or holds no usable clip; the message says how to make or fix it."""


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
