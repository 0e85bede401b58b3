"""A Ray ``worker_process_setup_hook`` for tests/data/test_ray.py: the first video a worker starts kills that worker
process once (as a native crash would), so the engine's retry can be tested. The marker file records that the crash
happened; it is named by the SONIC_TEST_CRASH_MARKER variable of the runtime environment."""

from __future__ import annotations

import os
from pathlib import Path

import sonic.data.worker as worker


def setup() -> None:
    marker = Path(os.environ["SONIC_TEST_CRASH_MARKER"])
    original = worker.process_video

    def crash_once(source, *args, **kwargs):
        if not marker.exists():
            marker.write_text(source)
            os._exit(1)
        return original(source, *args, **kwargs)

    worker.process_video = crash_once
