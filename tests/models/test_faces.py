"""Tests for sonic.models.faces: the YOLOv5-face contract (with a fake TorchScript net), dlib fallback, loader."""

import logging
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from sonic.errors import CheckpointError
from sonic.models.face_search import search_face
from sonic.models.faces import (
    DlibFaceDetector,
    Face,
    FaceDetector,
    YoloFaceDetector,
    largest_face,
    load_face_detector,
    nms,
    yolo_input_size,
)
from tests.paths import EXAMPLES

# The fake YOLO net has to be TorchScript, like the released yoloface_v5m.pt.
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.script.* is deprecated:DeprecationWarning")

PORTRAIT = EXAMPLES / "portrait.jpg"
RGB = (200.0, 100.0, 50.0)  # distinct channel values reveal a BGR/RGB swap or a missing /255


def _candidate(cx, cy, w, h, obj, cls, landmarks=None):
    if landmarks is None:
        landmarks = [(cx, cy)] * 5
    return [cx, cy, w, h, obj, *np.asarray(landmarks, dtype=float).ravel().tolist(), cls]


FACE_A_LANDMARKS = [(270, 170), (330, 170), (300, 200), (275, 240), (325, 240)]
# Raw network output in network pixels. Order matters: the small face comes first and the weaker duplicate of
# face A precedes face A, so "keep the first" NMS or "first face wins" selection would fail.
CANDIDATES = [
    _candidate(390, 60, 50, 70, 0.97, 0.97),  # face B (small) scores highest: conf 0.9409
    _candidate(305, 205, 160, 200, 0.9, 0.9, FACE_A_LANDMARKS),  # duplicate of A, conf 0.81 -> suppressed
    _candidate(300, 200, 160, 200, 0.95, 0.95, FACE_A_LANDMARKS),  # face A (large), conf 0.9025
    _candidate(130, 280, 250, 250, 0.6, 0.6),  # largest box but conf 0.36 -> dropped
    _candidate(60, 60, 300, 300, 0.45, 1.0),  # obj 0.45 -> dropped
]


class FakeYolo(torch.nn.Module):
    """Checks the official input contract, then returns fixed candidates."""

    def __init__(self, height: int, width: int) -> None:
        super().__init__()
        self.height = height
        self.width = width
        self.register_buffer("candidates", torch.tensor([CANDIDATES], dtype=torch.float32))
        self.register_buffer("rgb", torch.tensor(RGB) / 255.0)

    def forward(self, x: torch.Tensor, grids: list[torch.Tensor]) -> torch.Tensor:
        assert x.shape == [1, 3, self.height, self.width], "input shape"
        assert x.shape[2] % 32 == 0 and x.shape[3] % 32 == 0 and min(x.shape[2], x.shape[3]) >= 416
        assert bool(torch.allclose(x[0].mean(dim=(1, 2)), self.rgb, atol=1e-4)), "RGB order or /255"
        assert len(grids) == 3, "three grids"
        strides = [8, 16, 32]
        for i in range(3):
            rows = self.height // strides[i]
            cols = self.width // strides[i]
            grid = grids[i]
            assert grid.shape == [1, 1, rows, cols, 2], "grid shape"
            columns = torch.arange(cols, dtype=grid.dtype).expand(rows, cols)
            row_ids = torch.arange(rows, dtype=grid.dtype).unsqueeze(1).expand(rows, cols)
            assert bool(torch.equal(grid[0, 0, :, :, 0], columns)), "grid[..., 0] is the column"
            assert bool(torch.equal(grid[0, 0, :, :, 1], row_ids)), "grid[..., 1] is the row"
        return self.candidates


def _save_fake(tmp_path: Path, height: int, width: int) -> Path:
    path = tmp_path / "yoloface_v5m.pt"
    torch.jit.script(FakeYolo(height, width)).save(str(path))
    return path


def _uniform_rgb(height: int, width: int) -> np.ndarray:
    return np.broadcast_to(np.array(RGB, dtype=np.uint8), (height, width, 3)).copy()


@pytest.mark.parametrize(
    ("hw", "expected"),
    [((600, 900), (416, 640)), ((500, 300), (704, 416)), ((416, 417), (416, 448)), ((1080, 1920), (416, 768))],
)
def test_yolo_input_size_rounds_up(hw, expected):
    assert yolo_input_size(*hw) == expected


@pytest.mark.parametrize(("h0", "w0", "h1", "w1"), [(600, 900, 416, 640), (500, 300, 704, 416)])
def test_yolo_contract_with_fake_torchscript(tmp_path, h0, w0, h1, w1):
    detector = YoloFaceDetector(_save_fake(tmp_path, h1, w1))
    faces = detector(_uniform_rgb(h0, w0))
    assert len(faces) == 2
    scale = np.array([w0 / w1, h0 / h1])
    big, small = faces
    np.testing.assert_allclose(big.box, (np.array([[220, 100], [380, 300]]) * scale).ravel(), rtol=1e-6)
    np.testing.assert_allclose(small.box, (np.array([[365, 25], [415, 95]]) * scale).ravel(), rtol=1e-6)
    assert big.score == pytest.approx(0.95 * 0.95, abs=1e-6)
    assert small.score == pytest.approx(0.97 * 0.97, abs=1e-6)
    np.testing.assert_allclose(big.landmarks, np.array(FACE_A_LANDMARKS) * scale, rtol=1e-6)
    assert small.landmarks.shape == (5, 2)
    assert big.area > small.area
    # Bug B1: a largest-face pick must not depend on the order (raw output had the small face first).
    assert largest_face([small, big]) is big
    assert largest_face(list(reversed(faces))) is big


def test_yolo_no_candidate_above_threshold(tmp_path):
    class Empty(torch.nn.Module):
        def forward(self, x: torch.Tensor, grids: list[torch.Tensor]) -> torch.Tensor:
            out = torch.zeros(1, 4, 16)
            out[..., 4] = 0.7
            out[..., 15] = 0.7  # conf 0.49
            return out

    path = tmp_path / "empty.pt"
    torch.jit.script(Empty()).save(str(path))
    assert YoloFaceDetector(path)(_uniform_rgb(300, 300)) == []


def test_largest_face_fixes_b1():
    def face(size: float) -> Face:
        return Face(box=(0, 0, size, size), score=0.9, landmarks=np.zeros((5, 2)))

    small, large, medium = face(10), face(50), face(30)
    # The official loop returns the LAST face larger than the first one (medium here).
    assert largest_face([small, large, medium]) is large
    assert largest_face([]) is None


def test_face_dataclass():
    face = Face(box=(10, 20, 40, 80), score=0.5, landmarks=[[1, 2], [3, 4]])
    assert (face.width, face.height, face.area) == (30.0, 60.0, 1800.0)
    assert face.landmarks.shape == (2, 2) and not face.landmarks.flags.writeable
    with pytest.raises(ValueError, match="landmarks"):
        Face(box=(0, 0, 1, 1), score=1.0, landmarks=np.zeros(10))
    with pytest.raises(ValueError, match="box"):
        Face(box=(0, 0, 1), score=1.0, landmarks=np.zeros((5, 2)))


def test_nms_keeps_highest_scoring_box():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10]], dtype=torch.float32)
    scores = torch.tensor([0.8, 0.9, 0.7, 0.1])
    assert nms(boxes, scores, 0.45).tolist() == [1, 2]
    assert nms(boxes, scores, 0.9).tolist() == [1, 0, 2]  # IoU(0, 1) = 0.68, IoU(0, 3) = 1
    assert nms(boxes[:0], scores[:0], 0.45).tolist() == []


def test_bad_image_rejected(tmp_path):
    detector = YoloFaceDetector(_save_fake(tmp_path, 416, 416))
    with pytest.raises(ValueError, match="RGB uint8"):
        detector(np.zeros((64, 64, 3), dtype=np.float32))


@pytest.fixture(scope="module")
def dlib_detector() -> DlibFaceDetector:
    return DlibFaceDetector()


@pytest.fixture(scope="module")
def portrait() -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(PORTRAIT)), cv2.COLOR_BGR2RGB)


def test_dlib_finds_the_astronaut(dlib_detector, portrait):
    assert portrait.shape == (512, 512, 3)
    faces = dlib_detector(portrait)
    assert len(faces) == 1  # the round shoulder badge (dlib score 0.16) must not count
    face = faces[0]
    x1, y1, x2, y2 = face.box
    assert 80 <= face.width <= 300 and 80 <= face.height <= 300
    assert 160 <= (x1 + x2) / 2 <= 352 and 40 <= (y1 + y2) / 2 <= 230  # upper middle: the face is at ~(220, 125)
    assert face.score > 0.5
    points = face.landmarks
    assert points.shape == (68, 2)
    margin = 0.2 * face.width  # the chin usually sits a little below dlib's box
    assert np.all(points >= np.array([x1, y1]) - margin) and np.all(points <= np.array([x2, y2]) + margin)
    eyes, mouth = points[36:48], points[48:68]
    assert eyes[:, 1].mean() < points[30, 1] < mouth[:, 1].mean()  # eyes above nose tip above mouth
    assert points[36:42, 0].mean() < points[42:48, 0].mean()  # image-left eye is left
    np.testing.assert_array_equal(dlib_detector.landmarks68(portrait, face.box), points)


def test_dlib_large_image_is_downscaled_and_mapped_back(dlib_detector, portrait):
    reference = dlib_detector(portrait)[0]
    big = cv2.resize(portrait, (1024, 1024), interpolation=cv2.INTER_LINEAR)
    faces = dlib_detector(big)
    assert len(faces) == 1
    np.testing.assert_allclose(faces[0].box, np.array(reference.box) * 2, atol=0.1 * 2 * reference.width)
    assert np.abs(faces[0].landmarks - reference.landmarks * 2).mean() < 6


@pytest.mark.parametrize("kind", ["grey", "noise"])
def test_dlib_no_face(dlib_detector, kind):
    if kind == "grey":
        image = np.full((512, 512, 3), 128, dtype=np.uint8)
    else:
        image = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    assert dlib_detector(image) == []


@pytest.mark.parametrize("use_path", [False, True])
def test_load_face_detector_falls_back_to_dlib(tmp_path, caplog, use_path):
    missing = tmp_path / "checkpoints" / "yoloface_v5m.pt"
    with caplog.at_level(logging.WARNING, logger="sonic.models.faces"):
        detector = load_face_detector(missing if use_path else None)
    assert isinstance(detector, DlibFaceDetector) and isinstance(detector, FaceDetector)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "dlib" in warnings[0].getMessage()
    if use_path:
        assert str(missing) in warnings[0].getMessage()


def test_load_face_detector_uses_yolo_when_present(tmp_path, caplog):
    path = _save_fake(tmp_path, 416, 416)
    with caplog.at_level(logging.WARNING, logger="sonic.models.faces"):
        detector = load_face_detector(path)
    assert isinstance(detector, YoloFaceDetector) and not caplog.records


def test_corrupt_or_missing_yolo_file_names_the_path(tmp_path):
    corrupt = tmp_path / "yoloface_v5m.pt"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError, match=re.escape(str(corrupt))):
        load_face_detector(corrupt)
    state_dict = tmp_path / "state_dict.pt"
    torch.save({"weight": torch.zeros(3)}, state_dict)  # a valid torch file, but not TorchScript
    with pytest.raises(CheckpointError, match=re.escape(str(state_dict))):
        YoloFaceDetector(state_dict)
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nope.pt"))):
        YoloFaceDetector(tmp_path / "nope.pt")


def test_face_search_falls_back_to_a_padded_copy_then_to_the_cnn_detector(caplog):
    """The example portrait cut by the image edge: at the top (96 px) HOG needs the padded copy; at the left
    (200 px, through the face) only dlib's CNN detector finds it. The log names the search that found it."""
    portrait = cv2.cvtColor(cv2.imread(str(PORTRAIT)), cv2.COLOR_BGR2RGB)
    hog = DlibFaceDetector()
    top, left = portrait[96:], portrait[:, 200:]
    assert not hog(top) and not hog(left)
    with caplog.at_level(logging.WARNING, logger="sonic.models.face_search"):
        padded = search_face(top, hog, "top.png")
        cnn = search_face(left, hog, "left.png")
    assert "top.png: the face was found by the padded search" in caplog.text
    assert "left.png: the face was found by the cnn search" in caplog.text
    assert padded is not None and padded.box[1] == 0.0 and padded.box[3] < 120  # clipped at the cut, face size kept
    assert cnn is not None and cnn.box[0] == 0.0 and 40 < cnn.box[2] < 120 and 40 < cnn.box[3] - cnn.box[1] < 160
    assert search_face(np.full((200, 200, 3), 128, np.uint8), hog, "grey.png") is None
