"""``--dry-run``: what a preprocessing run would do, from the annotation and the raw folder alone (nothing is written).

Per dataset: clips, the raw videos they need (present, downloadable, without a URL), the hours of video to process,
annotation rows that give no clip, and clips the attribute filters dropped; then the expected disk use and time from
the rates below (measured; see docs/datasets.md).
"""

from __future__ import annotations

from sonic.config import PreprocessConfig
from sonic.data.decode import probe
from sonic.data.recipes import Recipe
from sonic.data.sources import Source
from sonic.errors import MediaError

SPEED_PER_WORKER = 1.0  # x real time per worker core: 1080x1920 talking heads, 2-core CPU (0.8-1.3x measured)
# Measured on the shared real clips (sharper footage encodes larger: take these as a lower bound):
DATASET_MB_PER_HOUR = 1150  # at --resolution 576: Whisper states 691, crop video 338 (lp_d6), audio 115, labels
CLIP_MB_PER_HOUR = 620  # the cut clips under OUTPUT/clips: H.264 crf 18 of a 700-px window (retalk_4)


def _seconds(source: Source) -> float | None:
    """The video time the source covers: the clip's span, else the (raw) video's duration when it can be probed."""
    if source.clip is not None and source.clip.span_s is not None:
        return source.clip.span_s[1] - source.clip.span_s[0]
    raw = source.raw
    try:
        return probe(raw).duration if raw is not None else None
    except MediaError:
        return None


def _dataset_entry(sources: list[Source]) -> dict:
    """Clips, hours and raw videos of one dataset's sources."""
    seconds = [_seconds(source) for source in sources]
    unique = list({source.path: source for source in sources}.values())  # one per raw video
    return {
        "clips": len(sources),
        "hours": round(sum(value or 0.0 for value in seconds) / 3600, 3),
        "unknown_length": sum(value is None for value in seconds),
        "raw_videos": len(unique),
        "raw_present": sum(source.raw is not None for source in unique),
        "raw_unobtainable": sum(source.raw is None and not (source.clip and source.clip.url) for source in unique),
    }


def plan(sources: list[Source], recipe: Recipe | None, config: PreprocessConfig) -> dict:
    """The dry-run report (see the module docstring) of this shard's ``sources``."""
    groups: dict[str, list[Source]] = {}
    for source in sources:
        groups.setdefault(source.clip.dataset if source.clip is not None else "videos", []).append(source)
    datasets = {name: _dataset_entry(group) for name, group in groups.items()}
    for problem in recipe.problems if recipe else []:
        entry = datasets.setdefault(problem.dataset, _dataset_entry([]))
        entry.setdefault("annotation_problems", {})
        entry["annotation_problems"][problem.reason] = entry["annotation_problems"].get(problem.reason, 0) + 1
    hours = sum(entry["hours"] for entry in datasets.values())
    dataset_mb = DATASET_MB_PER_HOUR * (config.resolution / 576) ** 2 * hours
    clips_mb = CLIP_MB_PER_HOUR * hours if recipe is not None else 0.0
    return {
        "datasets": dict(sorted(datasets.items())),
        "filtered_by_attributes": recipe.filtered if recipe else 0,
        "hours": round(hours, 3),
        "expected_disk_gb": round((dataset_mb + clips_mb) / 1000, 1),
        "expected_wall_hours": round(hours / (SPEED_PER_WORKER * config.workers), 2),
        "download": config.download,
    }


def plan_text(report: dict) -> str:
    """The report as the lines ``--dry-run`` prints."""
    lines = [
        f"dry run: nothing written; {report['hours']:.2f} h of video to process, about "
        f"{report['expected_disk_gb']} GB of disk and {report['expected_wall_hours']} h at "
        f"{SPEED_PER_WORKER:g}x real time per worker"
    ]
    for name, entry in report["datasets"].items():
        problems = entry.get("annotation_problems", {})
        lines.append(
            f"  {name}: {entry['clips']} clips, {entry['hours']:.2f} h, raw videos {entry['raw_present']} of "
            f"{entry['raw_videos']} present ({entry['raw_unobtainable']} missing without a URL)"
            + (f"; annotation rows without a clip: {problems}" if problems else "")
        )
    if report["filtered_by_attributes"]:
        lines.append(f"  {report['filtered_by_attributes']} clips dropped by the attribute filters")
    if not report["download"] and any(e["raw_present"] < e["raw_videos"] for e in report["datasets"].values()):
        lines.append("  missing raw videos are recorded as raw_missing; add --download to fetch them")
    return "\n".join(lines)
