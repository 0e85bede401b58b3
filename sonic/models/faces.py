"""Face detection for Sonic's preprocessing (face crop, face mask, landmarks).

The official code uses a YOLOv5-face TorchScript file (``checkpoints/yoloface_v5m.pt``, released_inference.md section
7). It is a released weight that we never download at run time, so a dlib HOG detector, whose model files ship inside
the ``face_recognition_models`` wheel, is the offline fallback. Both return :class:`Face` objects in original pixels,
sorted by area (largest first).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np
import torch

from sonic.errors import CheckpointError

logger = logging.getLogger(__name__)

YOLO_MIN_SIDE = 416
YOLO_STRIDES = (8, 16, 32)
YOLO_CONF_THRESHOLD = 0.5
YOLO_IOU_THRESHOLD = 0.45
DLIB_LANDMARKS_FILE = "shape_predictor_68_face_landmarks.dat"


@dataclass(frozen=True, eq=False)
class Face:
    """One face: ``box`` (x1, y1, x2, y2) and ``landmarks`` (K, 2) in original image pixels.

    ``eq=False`` because value equality over a numpy array is ambiguous; the landmarks are copied and made read-only
    so that the frozen dataclass is immutable in practice.
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray

    def __post_init__(self) -> None:
        box = tuple(float(v) for v in self.box)
        if len(box) != 4:
            raise ValueError(f"box must have 4 values (x1, y1, x2, y2), got {self.box!r}")
        landmarks = np.array(self.landmarks, dtype=np.float64)
        if landmarks.ndim != 2 or landmarks.shape[1] != 2:
            raise ValueError(f"landmarks must have shape (K, 2), got {landmarks.shape}")
        landmarks.setflags(write=False)
        object.__setattr__(self, "box", box)
        object.__setattr__(self, "score", float(self.score))
        object.__setattr__(self, "landmarks", landmarks)

    @property
    def width(self) -> float:
        return max(self.box[2] - self.box[0], 0.0)

    @property
    def height(self) -> float:
        return max(self.box[3] - self.box[1], 0.0)

    @property
    def area(self) -> float:
        return self.width * self.height


@runtime_checkable
class FaceDetector(Protocol):
    """Maps an RGB uint8 (H, W, 3) image to its faces, sorted by area, largest first."""

    def __call__(self, image: np.ndarray) -> list[Face]: ...


def largest_face(faces: Iterable[Face]) -> Face | None:
    """The face with the largest box area (first one on ties), or None.

    Fixes official bug B1, where the running maximum was never updated, so the *last* face larger than the first
    one won instead of the largest.
    """
    return max(faces, key=lambda face: face.area, default=None)


def _sort_by_area(faces: list[Face]) -> list[Face]:
    return sorted(faces, key=lambda face: -face.area)


def _check_image(image: Any, grey_ok: bool = False) -> np.ndarray:
    rgb = isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3
    grey = grey_ok and isinstance(image, np.ndarray) and image.ndim == 2
    if not (rgb or grey) or image.dtype != np.uint8:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        wanted = "an RGB uint8 (H, W, 3) or grey uint8 (H, W)" if grey_ok else "an RGB uint8 (H, W, 3)"
        raise ValueError(f"expected {wanted} array, got shape {shape} dtype {dtype}")
    return np.ascontiguousarray(image)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS with torchvision.ops.nms semantics (torchvision is not a dependency).

    Boxes are (N, 4) x1y1x2y2; returns the kept indices by decreasing score. A box is dropped when its IoU with an
    already kept box is > ``iou_threshold``.
    """
    order = torch.argsort(scores, descending=True, stable=True)
    areas = (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)
    keep: list[int] = []
    while order.numel() > 0:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        top_left = torch.maximum(boxes[best, :2], boxes[rest, :2])
        bottom_right = torch.minimum(boxes[best, 2:], boxes[rest, 2:])
        inter = (bottom_right - top_left).clamp(min=0).prod(dim=1)
        iou = inter / (areas[best] + areas[rest] - inter)
        order = rest[~(iou > iou_threshold)]  # NaN IoU (degenerate boxes) keeps the box, like torchvision
    return torch.tensor(keep, dtype=torch.long)


def yolo_input_size(height: int, width: int) -> tuple[int, int]:
    """Network input (H1, W1): min side scaled to 416, each side rounded UP to a multiple of 32 (official rule)."""
    ratio = YOLO_MIN_SIDE / min(height, width)
    return int(height * ratio + 31) // 32 * 32, int(width * ratio + 31) // 32 * 32


def yolo_grids(height: int, width: int, device: torch.device | str = "cpu") -> list[torch.Tensor]:
    """The per-stride anchor grids the TorchScript expects: (1, 1, H/s, W/s, 2) holding (column, row)."""
    grids = []
    for stride in YOLO_STRIDES:
        rows, cols = height // stride, width // stride
        yv, xv = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
        grids.append(torch.stack((xv, yv), dim=2).view(1, 1, rows, cols, 2).float().to(device))
    return grids


def _decode_yolo(pred: torch.Tensor, scale_x: float, scale_y: float) -> list[Face]:
    """Official post-processing of (n, 16) candidates [cx, cy, w, h, obj, 5x(x, y), cls] in network pixels."""
    pred = pred[pred[:, 4] > YOLO_CONF_THRESHOLD].double()
    conf = pred[:, 4] * pred[:, 15]
    pred, conf = pred[conf > YOLO_CONF_THRESHOLD], conf[conf > YOLO_CONF_THRESHOLD]
    cx, cy, w, h = pred[:, :4].unbind(dim=1)
    boxes = torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), dim=1)
    scale = torch.tensor([scale_x, scale_y], dtype=torch.float64)
    faces = []
    for k in nms(boxes, conf, YOLO_IOU_THRESHOLD).tolist():
        box = (boxes[k].view(2, 2) * scale).flatten().tolist()
        landmarks = pred[k, 5:15].view(5, 2) * scale
        faces.append(Face(box=tuple(box), score=float(conf[k]), landmarks=landmarks.numpy()))
    return _sort_by_area(faces)


class YoloFaceDetector:
    """The official YOLOv5-face TorchScript detector (5 landmarks: eyes, nose, mouth corners)."""

    def __init__(self, path: str | Path, device: torch.device | str = "cpu") -> None:
        self.path = Path(path)
        self.device = torch.device(device)
        if not self.path.is_file():
            raise FileNotFoundError(f"YOLOv5-face weights not found: {self.path}")
        try:
            with warnings.catch_warnings():  # the released file is TorchScript: there is nothing to switch to
                warnings.filterwarnings("ignore", ".*torch.jit.load.* is deprecated", DeprecationWarning)
                model = torch.jit.load(str(self.path), map_location=self.device)
        except Exception as err:  # torch raises several error types depending on how the file is broken
            raise CheckpointError(f"{self.path} is not a TorchScript module (expected yoloface_v5m.pt): {err}") from err
        self.model = model.eval()

    def __call__(self, image: np.ndarray) -> list[Face]:
        # The official code converts BGR->RGB before the net; our input is already RGB, so it goes straight in.
        image = _check_image(image)
        h0, w0 = image.shape[:2]
        h1, w1 = yolo_input_size(h0, w0)
        resized = cv2.resize(image, (w1, h1), interpolation=cv2.INTER_LINEAR)
        x = torch.from_numpy(resized).permute(2, 0, 1).unsqueeze(0).to(self.device).float() / 255.0
        with torch.no_grad():
            out = self.model(x, yolo_grids(h1, w1, self.device))
        if isinstance(out, (tuple, list)):  # YOLOv5 exports may return (pred, raw feature maps)
            out = out[0]
        if out.ndim != 3 or out.shape[0] != 1 or out.shape[2] != 16:
            raise ValueError(f"{self.path}: expected output (1, n, 16), got {tuple(out.shape)}")
        return _decode_yolo(out[0].detach().float().cpu(), w0 / w1, h0 / h1)


def dlib_model_path(name: str = DLIB_LANDMARKS_FILE) -> Path:
    """Path of a dlib model file shipped by ``face_recognition_models``.

    The package is located without importing it: its ``__init__`` imports ``pkg_resources``, which recent
    setuptools no longer provide.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("face_recognition_models is not installed; it ships dlib's face model files")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / name
    if not path.is_file():
        raise FileNotFoundError(f"dlib model file not found: {path}")
    return path


@functools.cache
def _dlib_models(landmarks_path: str) -> tuple[Any, Any]:
    """HOG detector and shape predictor, loaded once per process (about 2 s on 2 cores), shared by instances."""
    import dlib  # local import: the YOLO path does not need dlib

    return dlib.get_frontal_face_detector(), dlib.shape_predictor(landmarks_path)


class DlibFaceDetector:
    """Offline fallback: dlib HOG frontal detector + 68-point shape predictor.

    ``min_score``: dlib's default threshold (0.0) fires on a round shoulder badge in the example portrait (score
    0.16, a box as large as the face), so weak detections are dropped. ``max_side``: HOG cost grows with the pixel
    count (x4 with ``upsample=1``), so large frames are detected on a copy whose long side is ``max_side`` and the
    boxes are mapped back; with upsampling it still finds faces down to ~40 px at that scale, far smaller than the
    face in a talking-head portrait. Landmarks are predicted on the full-resolution image, unless ``landmarks`` is
    False (the faces then carry none: for callers that only need boxes). Images may be RGB or grey (HOG and the shape
    predictor read grey anyway).
    """

    def __init__(
        self, upsample: int = 1, min_score: float = 0.5, max_side: int | None = 640, landmarks: bool = True
    ) -> None:
        import dlib

        self.upsample = upsample
        self.min_score = min_score
        self.max_side = max_side
        self.predict_landmarks = landmarks
        self._dlib = dlib
        self._detector, self._predictor = _dlib_models(str(dlib_model_path()))

    def __call__(self, image: np.ndarray) -> list[Face]:
        image = _check_image(image, grey_ok=True)
        small, scale_x, scale_y = self._downscale(image)
        rects, scores, _ = self._detector.run(small, self.upsample, self.min_score)
        faces = []
        for rect, score in zip(rects, scores, strict=True):
            # dlib's right/bottom are inclusive pixel indices; +1 gives the exclusive edge.
            x1, y1, x2, y2 = rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1
            box = (x1 * scale_x, y1 * scale_y, x2 * scale_x, y2 * scale_y)
            points = self._landmarks(image, box) if self.predict_landmarks else np.zeros((0, 2))
            faces.append(Face(box=box, score=score, landmarks=points))
        return _sort_by_area(faces)

    def landmarks68(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """68 (x, y) landmarks inside ``box`` (x1, y1, x2, y2), e.g. a box from the YOLO detector.

        The predictor was trained on dlib HOG boxes (tighter, roughly brows to chin); other detectors' boxes work
        but may give slightly less accurate points.
        """
        return self._landmarks(_check_image(image, grey_ok=True), box)

    def _landmarks(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        x1, y1, x2, y2 = (round(float(v)) for v in box)
        shape = self._predictor(image, self._dlib.rectangle(x1, y1, x2 - 1, y2 - 1))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)

    def _downscale(self, image: np.ndarray) -> tuple[np.ndarray, float, float]:
        h, w = image.shape[:2]
        if self.max_side is None or max(h, w) <= self.max_side:
            return image, 1.0, 1.0
        ratio = self.max_side / max(h, w)
        size = (max(round(w * ratio), 1), max(round(h * ratio), 1))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        return small, w / size[0], h / size[1]


def load_face_detector(yolo_path: str | Path | None, device: torch.device | str = "cpu") -> FaceDetector:
    """The official YOLO detector when its file exists, else the dlib fallback (with a warning).

    A file that exists but is not TorchScript raises instead of silently falling back.
    """
    if yolo_path is not None and Path(yolo_path).is_file():
        return YoloFaceDetector(yolo_path, device=device)
    missing = "no YOLOv5-face path given" if yolo_path is None else f"YOLOv5-face weights not found at {yolo_path}"
    logger.warning("%s; falling back to the dlib HOG face detector: crop and mask quality may differ", missing)
    return DlibFaceDetector()
