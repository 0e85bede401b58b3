"""Two folders of videos paired by file stem -> the report (metrics.json, metrics.md, plots)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sonic.data.av_sync import sync_scores
from sonic.evaluation import frechet, identity, lipsync, weights
from sonic.evaluation.clips import WORK_SIDE, Clip, pair_videos, read_clip
from sonic.evaluation.flicker import flicker
from sonic.evaluation.motion import freeze_seconds, motion_errors
from sonic.evaluation.mouth import lmd
from sonic.evaluation.pixels import psnr_ssim
from sonic.evaluation.report import METRICS, plot_video, write_json, write_markdown
from sonic.models.syncnet import load_syncnet
from sonic.timing import VIDEO_FPS

SET_LEVEL = ("fid", "fvd")
MAY_BE_NONE = ("flicker_period_s",)  # None is a result: no periodic flicker
FACE_METRICS = (
    "sync_c",
    "sync_d",
    "csim",
    "csim_drift",
    "csim_dlib",
    "lmd",
    "motion_head_mae",
    "motion_expression_mae",
)
DLIB_IDENTITY = "csim_dlib"  # the one network metric whose model ships with a package (face_recognition_models)
LOADERS: dict[str, Callable[[Path, str], Any]] = {
    weights.INCEPTION.name: frechet.InceptionFeatures,
    weights.I3D.name: frechet.I3DFeatures,
    weights.SYNCNET.name: load_syncnet,
    weights.ARCFACE.name: identity.ArcFace,
}


@dataclass
class Networks:
    """The loaded metric networks by weight-file name, the skips of the missing ones and the files' SHA-256."""

    device: str
    models: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)

    def get(self, weight: weights.WeightFile, wanted: set[str]) -> Any:
        return self.models.get(weight.name) if wanted & set(weight.metrics) else None


def load_networks(folder: Path, wanted: set[str], device: str) -> Networks:
    networks = Networks(device)
    for weight in weights.WEIGHT_FILES:
        needed = [metric for metric in weight.metrics if metric in wanted]
        if not needed:
            continue
        path = weights.checked_path(weight, folder)
        if path is None:
            networks.skipped.update(dict.fromkeys(needed, weights.skip_reason(weight, folder)))
            continue
        networks.models[weight.name] = LOADERS[weight.name](path, device)
        networks.hashes[weight.name] = weights.sha256(path)
    if DLIB_IDENTITY in wanted:
        load_dlib_embedder(networks)
    return networks


def load_dlib_embedder(networks: Networks) -> None:
    """dlib's face-recognition model from face_recognition_models, or the skip of csim_dlib when it is absent."""
    try:
        embedder = identity.DlibFaceEmbedder()
    except (ImportError, FileNotFoundError) as error:
        networks.skipped[DLIB_IDENTITY] = f"skipped: {error}"
        return
    networks.models[DLIB_IDENTITY] = embedder
    networks.hashes[embedder.path.name] = weights.sha256(embedder.path)


def driving_audio(generated: Clip, reference: Clip) -> np.ndarray | None:
    """The audio a generated video was driven by: its own track (written from the driving audio), else the
    reference's (a method that writes silent videos was driven by the reference clip's speech)."""
    return generated.audio if generated.audio is not None else reference.audio


def pair_metrics(generated: Clip, reference: Clip) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The metrics that need no download, and the per-frame series the plots draw."""
    values: dict[str, Any] = {}
    series: dict[str, np.ndarray] = {}
    flicker_values, series["flicker"] = flicker(generated.frames)
    values.update(flicker_values)
    values["freeze_seconds"], freeze_series = freeze_seconds(generated)
    series.update(freeze_series)
    values.update(psnr_ssim(generated.frames, reference.frames))
    values["lmd"] = lmd(generated.landmarks, reference.landmarks)
    values.update(lipsync.mouth_audio_sync(generated.landmarks, driving_audio(generated, reference)))
    motion_values, motion_series = motion_errors(generated, reference)
    values.update(motion_values)
    series.update(motion_series)
    return values, series


def no_reference_metrics(path: Path) -> dict[str, float]:
    """The metrics one video has without a reference (training validation): flicker_score and freeze_seconds."""
    clip = read_clip(path)
    return {"flicker_score": flicker(clip.frames)[0]["flicker_score"], "freeze_seconds": freeze_seconds(clip)[0]}


def network_metrics(generated: Clip, reference: Clip, networks: Networks, wanted: set[str]) -> dict[str, Any]:
    """Sync-C / Sync-D and CSIM (ArcFace, dlib) of one video (those whose network is loaded and which have a face)."""
    values: dict[str, Any] = {}
    sync = networks.get(weights.SYNCNET, wanted)
    audio = driving_audio(generated, reference)
    if sync is not None and generated.has_face() and audio is not None:
        values.update(sync_scores(sync, generated.frames, generated.landmarks, audio, networks.device))
    if not (generated.has_face() and reference.has_face()):
        return values
    first = int(np.flatnonzero(np.isfinite(reference.landmarks).all(axis=(1, 2)))[0])
    image = (reference.frames[first], reference.landmarks[first])
    # the dlib model is loaded only when csim_dlib is wanted (load_networks)
    embedders = {"csim": networks.get(weights.ARCFACE, wanted), DLIB_IDENTITY: networks.models.get(DLIB_IDENTITY)}
    for key, embedder in embedders.items():
        if embedder is not None:
            scores, _ = identity.identity_scores(embedder.embed, image, generated.frames, generated.landmarks, key)
            values.update(scores)
    return values


def notes(generated: Clip, reference: Clip) -> dict[str, str]:
    """Why a metric of this pair has no value."""
    out = {}
    sync_reason = lipsync.why_unmeasurable(generated.landmarks, driving_audio(generated, reference))
    if sync_reason is not None:
        out.update(dict.fromkeys(lipsync.KEYS, sync_reason))
    missing = [side for side, clip in (("generated", generated), ("reference", reference)) if not clip.has_face()]
    if missing:
        out.update(dict.fromkeys(FACE_METRICS, f"no face found in the {' and '.join(missing)} video"))
    elif len(generated.frames) < 49 or len(reference.frames) < 49:
        out.update(dict.fromkeys(("motion_head_mae", "motion_expression_mae"), "shorter than one 49-frame window"))
    return out


def add_features(
    features: dict[str, dict[str, list]], networks: Networks, wanted: set[str], side: str, clip: Clip
) -> None:
    for metric, weight in (("fid", weights.INCEPTION), ("fvd", weights.I3D)):
        model = networks.get(weight, wanted)
        if model is not None:
            features[metric][side].append(model(clip.frames))


def set_level(features: dict[str, dict[str, list]]) -> tuple[dict[str, float], dict[str, str]]:
    """FID / FVD over all videos, or why not (fewer than two feature vectors on a side)."""
    values, skipped = {}, {}
    for metric, sides in features.items():
        if not sides["gen"]:
            continue
        gen, ref = (np.concatenate(sides[side]) for side in ("gen", "ref"))
        if min(len(gen), len(ref)) < 2:
            unit = "16-frame clips" if metric == "fvd" else "frames"
            skipped[metric] = (
                f"skipped: needs at least two {unit} per side, got {len(gen)} generated, {len(ref)} reference"
            )
            continue
        values[metric] = frechet.feature_distance(gen, ref)
    return values, skipped


def means(per_video: dict[str, dict[str, Any]], wanted: list[str], skipped: dict[str, str]) -> dict[str, float | None]:
    """Mean of each per-video metric over the videos that have a value; a metric no video has becomes a skip
    (except flicker_period_s, which is None when no video flickers periodically)."""
    out: dict[str, float | None] = {}
    for metric in wanted:
        if metric in SET_LEVEL or metric in skipped:
            continue
        values = [v[metric] for v in per_video.values() if v.get(metric) is not None and np.isfinite(v[metric])]
        if values:
            out[metric] = float(np.mean(values))
        elif metric in MAY_BE_NONE:
            out[metric] = None
        else:
            reasons = sorted({v["notes"].get(metric, "no value") for v in per_video.values()})
            skipped[metric] = "skipped: " + "; ".join(reasons)
    return out


def evaluate_folders(
    reference: Path,
    generated: Path,
    output: Path,
    weights_dir: Path = weights.DEFAULT_WEIGHTS,
    metrics: list[str] | None = None,
    device: str = "cpu",
    protocol: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluates every generated video that has a reference of the same stem; writes and returns the report."""
    wanted = list(metrics or METRICS)
    pairs, unpaired = pair_videos(reference, generated)
    networks = load_networks(weights_dir, set(wanted), device)
    features: dict[str, dict[str, list]] = {metric: {"gen": [], "ref": []} for metric in SET_LEVEL}
    per_video = {}
    output.mkdir(parents=True, exist_ok=True)
    for stem, reference_path, generated_path in pairs:
        ref, gen = read_clip(reference_path), read_clip(generated_path)
        values, series = pair_metrics(gen, ref)
        values.update(network_metrics(gen, ref, networks, set(wanted)))
        values["notes"] = notes(gen, ref)
        add_features(features, networks, set(wanted), "gen", gen)
        add_features(features, networks, set(wanted), "ref", ref)
        extras = {key: value for key, value in values.items() if key not in METRICS}
        shown = [key for key in wanted if key not in SET_LEVEL and key not in networks.skipped]
        per_video[stem] = {**{key: values.get(key) for key in shown}, **extras}
        plot_video(stem, series, output / "plots" / f"{stem}.png")
        print(f"evaluated {stem}", flush=True)
    skipped = dict(networks.skipped)
    set_means, set_skips = set_level(features)
    skipped.update(set_skips)
    mean = {**set_means, **means(per_video, wanted, skipped)}
    mean = {key: mean[key] for key in METRICS if key in mean}
    record = {
        "mode": "folders",
        "reference": str(reference),
        "generated": str(generated),
        "fps": VIDEO_FPS,
        "work_side": WORK_SIDE,
        "weights": networks.hashes,
        "unpaired": unpaired,
        **(protocol or {}),
    }
    report = {"mean": mean, "per_video": per_video, "skipped": skipped, "protocol": record}
    write_json(report, output)
    write_markdown(report, output)
    return report
