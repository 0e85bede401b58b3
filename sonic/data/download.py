"""Fetching the raw videos a recipe needs with yt-dlp (``--download``; ``pip install -e ".[download]"``).

Each raw video is fetched once, however many clips use it, several at a time (threads: the work is network-bound),
to ``INPUT/<name>.<ext>`` with the format selection of CelebV-HQ's own script (the best mp4 video and m4a audio,
merged into an mp4 by the ffmpeg that imageio-ffmpeg ships), falling back to the best single file. yt-dlp writes
``.part`` files and renames them when complete, so an interrupted run resumes. A video that cannot be had (removed,
private, region-locked, no network) comes back as an error message for the caller to record; it never stops the run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sonic.data.layout import VIDEO_SUFFIXES
from sonic.errors import UserError

FORMAT = "bestvideo[ext=mp4]+bestaudio[ext=m4a]/bestvideo+bestaudio/best"
logger = logging.getLogger(__name__)


def find_raw(folder: Path, name: str) -> Path | None:
    """``folder/<name><suffix>`` for the first video suffix that exists (the name may carry its suffix already)."""
    candidates = [folder / name] if Path(name).suffix.lower() in VIDEO_SUFFIXES else []
    candidates += [folder / f"{name}{suffix}" for suffix in VIDEO_SUFFIXES]
    return next((path for path in candidates if path.is_file()), None)


def _yt_dlp_options(folder: Path, name: str) -> dict:
    import imageio_ffmpeg

    return {
        "format": FORMAT,
        "merge_output_format": "mp4",
        "outtmpl": str(folder / f"{name}.%(ext)s"),
        "ffmpeg_location": imageio_ffmpeg.get_ffmpeg_exe(),
        "enable_file_urls": True,
        "retries": 3,
        "skip_unavailable_fragments": True,
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
    }


def download_video(folder: Path, name: str, url: str) -> str | None:
    """Fetches ``url`` to ``folder/<name>.<ext>``; None on success, else the downloader's message."""
    from yt_dlp import YoutubeDL
    from yt_dlp.utils import DownloadError

    try:
        with YoutubeDL(_yt_dlp_options(folder, name)) as downloader:
            downloader.download([url])
    except DownloadError as error:
        return str(error).removeprefix("ERROR: ").strip()
    return None if find_raw(folder, name) is not None else f"yt-dlp reported success but wrote no {name}.* video"


def download_missing(
    folder: Path, videos: dict[str, str | None], jobs: int, progress: Callable[[], None] | None = None
) -> dict[str, str]:
    """Fetches every video of ``videos`` (name -> URL) that ``folder`` lacks; returns name -> why it is missing for
    those that could not be had (no URL in the annotation included)."""
    try:
        import yt_dlp  # noqa: F401
    except ImportError:
        raise UserError('--download needs yt-dlp: pip install -e ".[download]" (or pip install yt-dlp)') from None
    folder.mkdir(parents=True, exist_ok=True)
    missing = {name: url for name, url in videos.items() if find_raw(folder, name) is None}
    errors = {name: "the annotation gives no URL for this video" for name, url in missing.items() if not url}
    wanted = {name: url for name, url in missing.items() if url}

    def fetch(item: tuple[str, str]) -> tuple[str, str | None]:
        result = download_video(folder, *item)
        if progress is not None:
            progress()
        return item[0], result

    with ThreadPoolExecutor(max(jobs, 1)) as pool:
        for name, error in pool.map(fetch, wanted.items()):
            if error is not None:
                logger.warning("%s: cannot download %s: %s", name, wanted[name], error)
                errors[name] = error
    return errors
