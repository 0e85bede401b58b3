"""The latent cache: training on cached VAE latents matches training on decoded frames; a cache is reused while valid
and rebuilt when not."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from safetensors.torch import load, load_file, save_file

from sonic.training import latent_cache, loop
from sonic.training.model import TrainingModels
from tests.training_setup import FRAMES, RESOLUTION, dataset_copy, make_config


@pytest.mark.slow
def test_cached_latents_train_like_decoded_frames(tiny_checkpoint, dataset, tmp_path):
    """Same seed, same clips, references, noise and dropout: the losses of both runs agree to float rounding."""
    root = dataset_copy(dataset, tmp_path / "data")
    common = {"train_batch_size": 2, "max_train_steps": 3}
    decoded = loop.train(make_config(tiny_checkpoint, root, tmp_path / "decoded", **common))
    cache = tmp_path / "local_cache"
    cached = loop.train(
        make_config(
            tiny_checkpoint, root, tmp_path / "cached", cache_latents=True, latent_cache_dir=str(cache), **common
        )
    )
    assert len(list((cache / str(RESOLUTION)).glob("*.safetensors"))) == 2
    assert not (root / latent_cache.CACHE_DIR).exists()
    assert sorted(cached.losses) == [1, 2, 3]
    np.testing.assert_allclose(list(cached.losses.values()), list(decoded.losses.values()), rtol=1e-5)


def test_latent_cache_is_reused_and_rebuilt_when_invalid(tiny_components, dataset, tmp_path, monkeypatch, caplog):
    data = latent_cache.CachedClipDataset(dataset_copy(dataset, tmp_path / "data"), FRAMES, RESOLUTION, window_stride=7)
    models = TrainingModels(torch.nn.Identity(), tiny_components.vae, tiny_components.image_encoder)
    latent_cache.build_latent_cache(data, models)
    corrupt, mismatched = (data.cache_file(segment) for segment in data.segments())
    built = {path: (path.stat().st_mtime_ns, load(path.read_bytes())) for path in (corrupt, mismatched)}  # not mmap
    with monkeypatch.context() as patch:
        patch.setattr(latent_cache, "encode_segment", lambda *args: pytest.fail("a valid cache file was re-encoded"))
        latent_cache.build_latent_cache(data, models)
    assert all(path.stat().st_mtime_ns == mtime for path, (mtime, _) in built.items())
    corrupt.write_bytes(corrupt.read_bytes()[:-100])
    save_file(built[mismatched][1], mismatched, {latent_cache.FINGERPRINT: "another VAE"})
    latent_cache.build_latent_cache(data, models)
    key = latent_cache.fingerprint(models, RESOLUTION)
    for segment in data.segments():
        path, (_, tensors) = data.cache_file(segment), built[data.cache_file(segment)]
        assert latent_cache.is_cached(path, key, segment.num_frames), path
        assert all(torch.equal(load_file(path)[name], tensor) for name, tensor in tensors.items()), path
    assert not list(data.cache.glob(".*.tmp"))
    (data.cache / "removed-segment.safetensors").write_bytes(bytes(2_000_000))
    with caplog.at_level(logging.WARNING):
        latent_cache.build_latent_cache(data, models)
    assert "1 files (0.00 GB) belong to no segment" in caplog.text
