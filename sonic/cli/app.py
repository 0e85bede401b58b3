"""Gradio app (``python sonic_demo.py --gradio``): upload a portrait, upload or record speech, get a video.

The model is loaded once, before the server starts; the queue runs one generation at a time (one model, one GPU).
Uploads are limited by type (the image and audio components accept only images and audio) and by size
(:data:`MAX_FILE_SIZE`). The server listens on 127.0.0.1 unless a host is given, and opens a public link only with
``share=True``. Gradio is imported inside the functions: it takes about 13 s to import, which the CLI should not pay.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sonic.config import MOTION_PRESETS, InferenceConfig
from sonic.errors import USER_ERRORS
from sonic.pipeline import SonicPipeline

if TYPE_CHECKING:
    import gradio as gr

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MAX_FILE_SIZE = "20mb"
MAX_STEPS = 50
INTRO = """# Sonic: talking-head video from one portrait and a speech clip
Upload a portrait with a visible face and a speech recording (or record one), then press **Generate**.
*Motion* scales the head and expression motion predicted from the audio; *fixed motion buckets* (0-127) replace it."""


def portrait_input() -> gr.Image:
    """The portrait upload: a ``gr.Image`` whose file that is no image (a text file renamed .png) shows our message
    instead of Gradio's generic error box (Gradio opens the upload before any handler runs). The instance's
    ``preprocess`` is wrapped rather than subclassed: a Gradio component subclass writes a ``.pyi`` stub beside its
    module."""
    import gradio as gr

    image = gr.Image(type="filepath", sources=["upload"], label="Portrait", elem_id="portrait")
    read_upload = image.preprocess

    def preprocess(payload: Any) -> Any:
        try:
            return read_upload(payload)
        except OSError as error:  # PIL.UnidentifiedImageError is one
            name = getattr(payload, "orig_name", None) or "the upload"
            raise gr.Error(
                f"{name}: not an image Sonic can read ({error.__class__.__name__}); upload a JPEG, PNG or WebP portrait"
            ) from None

    image.preprocess = preprocess  # type: ignore[method-assign]  # this instance's method is wrapped (docstring)
    return image


def make_handler(pipeline: SonicPipeline, output_dir: Path) -> Callable[..., str]:
    """The click handler: UI values -> :meth:`SonicPipeline.generate_video` overrides -> path of the mp4."""
    import gradio as gr

    def generate(
        image: str | None,
        audio: str | None,
        motion: str | None,
        fix_buckets: bool,
        translation: float,
        expression: float,
        seed: float,
        steps: float,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio's documented way to receive a progress bar)
    ) -> str:
        if not image or not audio:
            raise gr.Error("Upload a portrait and an audio clip first.")
        overrides: dict[str, Any] = {"seed": int(seed), "num_inference_steps": int(steps)}
        if motion:  # else the config's dynamic_scale, which no preset names
            overrides["motion"] = motion
        if fix_buckets:
            overrides |= {"translation_bucket": int(translation), "expression_bucket": int(expression)}
        output = output_dir / f"sonic-{uuid.uuid4().hex[:12]}.mp4"

        def on_step(done: int, total: int) -> None:
            progress((done, total), desc="denoising", unit="steps")

        try:
            return str(pipeline.generate_video(image, audio, output, on_step=on_step, **overrides))
        except USER_ERRORS as error:
            raise gr.Error(str(error)) from None

    return generate


def bucket_default(bucket: int | None) -> int:
    """Slider start of a fixed motion bucket: the config's value, else the middle of 0-127 (0 is a valid value)."""
    return 64 if bucket is None else bucket


def build_app(pipeline: SonicPipeline, output_dir: Path) -> gr.Blocks:
    """The page; its defaults are the pipeline's inference config. The API endpoint is ``/generate``."""
    import gradio as gr

    defaults = pipeline.inference_config
    with gr.Blocks(title="Sonic", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column():
                image = portrait_input()
                audio = gr.Audio(type="filepath", sources=["upload", "microphone"], label="Speech", elem_id="speech")
                preset = [word for word, scale in MOTION_PRESETS.items() if scale == defaults.dynamic_scale]
                motion = gr.Radio(list(MOTION_PRESETS), value=preset[0] if preset else None, label="Motion")
                with gr.Accordion("Fixed motion buckets", open=False):
                    fixed = defaults.translation_bucket is not None or defaults.expression_bucket is not None
                    fix_buckets = gr.Checkbox(fixed, label="Use these instead of the motion predicted from the audio")
                    translation = gr.Slider(
                        0, 127, value=bucket_default(defaults.translation_bucket), step=1, label="Head motion"
                    )
                    expression = gr.Slider(
                        0, 127, value=bucket_default(defaults.expression_bucket), step=1, label="Expression"
                    )
                with gr.Row():
                    seed = gr.Number(defaults.seed, precision=0, label="Seed")
                    steps = gr.Slider(
                        1, MAX_STEPS, value=min(defaults.num_inference_steps, MAX_STEPS), step=1, label="Steps"
                    )
                button = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column():
                video = gr.Video(label="Result", interactive=False, buttons=["download"], elem_id="result")
        if (EXAMPLES / "portrait.jpg").is_file() and (EXAMPLES / "speech.wav").is_file():
            gr.Examples([[str(EXAMPLES / "portrait.jpg"), str(EXAMPLES / "speech.wav")]], inputs=[image, audio])
        inputs = [image, audio, motion, fix_buckets, translation, expression, seed, steps]
        button.click(make_handler(pipeline, output_dir), inputs=inputs, outputs=video, api_name="generate")
    return app.queue(default_concurrency_limit=1)


def launch(config: InferenceConfig, host: str = "127.0.0.1", port: int = 7860, share: bool = False) -> None:
    """Loads the model once, then serves the app until interrupted; videos live in a temporary folder meanwhile."""
    pipeline = SonicPipeline.from_inference_config(config)
    with tempfile.TemporaryDirectory(prefix="sonic-app-") as output_dir:
        app = build_app(pipeline, Path(output_dir))
        app.launch(
            server_name=host,
            server_port=port,
            share=share,
            max_file_size=MAX_FILE_SIZE,
            allowed_paths=[str(EXAMPLES)],
        )
