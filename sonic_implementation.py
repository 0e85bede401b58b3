"""The Python API of the released code's README (the code lives in :mod:`sonic.api` and :mod:`sonic.pipeline`):

import cv2
from sonic_implementation import SonicConfig, SonicPipeline, extract_audio_features, save_video

config = SonicConfig()                  # every inference default, documented; SonicConfig.load_yaml / save_yaml
pipeline = SonicPipeline(config)        # loads config.checkpoint; SonicPipeline.from_pretrained(path) works too
video = pipeline.generate(reference_image=cv2.imread("portrait.jpg"),         # BGR arrays are the default
                          audio_features=extract_audio_features("audio.wav"),
                          num_frames=25, motion_buckets={"translation": 64, "expression": 96})
save_video(video, "output.mp4", audio="audio.wav")  # video.frames: uint8 (T, H, W, 3) RGB, video.fps
pipeline.generate_video(image_path="portrait.jpg", audio_path="audio.wav", output_path="out.mp4")
"""

from sonic.api import GeneratedVideo, extract_audio_features, save_video
from sonic.config import InferenceConfig as SonicConfig
from sonic.models.whisper import AudioFeatures
from sonic.pipeline import SonicPipeline

__all__ = ["AudioFeatures", "GeneratedVideo", "SonicConfig", "SonicPipeline", "extract_audio_features", "save_video"]
