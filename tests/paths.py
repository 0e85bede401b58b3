"""Where the tests find things: the repository, its examples and fixtures, and the shared real-data folder beside the
checkout (tests that need it skip with a reason when it is absent)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
FIXTURES = ROOT / "tests" / "fixtures"  # released-checkpoint manifests and the golden outputs of the tiny checkpoint
GOLDEN = FIXTURES / "golden"
SHARED_DATA = ROOT.parent / "shared" / "data"
REAL_CLIPS = SHARED_DATA / "real_talking"
HDTF = SHARED_DATA / "hdtf"
