"""The sampler's plain functions (sonic/sampling.py), pinned by hand; the whole loop is pinned by the golden latents
of tests/test_golden.py."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from sonic.sampling import circular_windows, euler_step


def test_circular_windows_move_back_by_the_shift_and_wrap() -> None:
    first, second = circular_windows(30, 25, 0, 7, torch.device("cpu"))
    assert first.tolist() == [(k - 7) % 30 for k in range(25)]  # 23, 24, ..., 29, 0, ..., 17
    assert second.tolist() == [(25 + k - 7) % 30 for k in range(25)]  # 18, ..., 29, 0, ..., 12: frames seen twice
    assert [w.tolist()[:2] for w in circular_windows(50, 25, 5, 0, torch.device("cpu"))] == [[0, 1], [20, 21], [40, 41]]


def test_euler_step_is_the_edm_update_of_the_v_prediction() -> None:
    scheduler = SimpleNamespace(sigmas=torch.tensor([2.0, 0.5, 0.0]))
    x, v = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 1.0])
    # sigma 2: c_skip = 1/5, c_out = -2/sqrt(5); denoised = x/5 - 2v/sqrt(5); x + (x - denoised) / 2 * (0.5 - 2)
    denoised = x / 5 - 2 * v / 5**0.5
    expected = x + (x - denoised) / 2.0 * (0.5 - 2.0)
    assert torch.allclose(euler_step(scheduler, x, v, 0), expected)
    assert torch.allclose(euler_step(scheduler, x, v, 0), torch.tensor([0.0645898, -1.4708204]), atol=1e-6)
