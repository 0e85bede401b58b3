"""Preprocessing on Ray (``--engine ray``): the local engine's per-video work on a pool of Ray actors.

Each actor is a :class:`~sonic.data.worker.VideoWorker` (models loaded once, one CPU core; with GPUs in the
cluster, a fraction of a GPU so that Whisper and YOLOv5-face share the devices, ``--device auto`` then picks it).
Videos go to the actors as tasks; results come back to this process, which alone writes the ledger, so resuming,
sharding and the dataset layout are the local engine's. A video whose actor dies (a native crash, a lost node) is
retried on a restarted actor up to ``RETRIES`` times; after that the run stops and a rerun resumes it.

Every node must see the input videos and the output folder at the same paths (a shared file system), as with
``--shard`` runs. Without ``--ray-address`` a local cluster is started (and stopped at the end); a driver that has
already called ``ray.init`` keeps its connection.
"""

from __future__ import annotations

from collections.abc import Iterator

from sonic.config import ConfigError, PreprocessConfig
from sonic.data.sources import Source
from sonic.data.worker import VideoResult, VideoWorker

RETRIES = 2  # restarts of a dead actor, and retries of the video it held


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError('--engine ray needs Ray: pip install -e ".[ray]" (or pip install "ray>=2.40")') from None
    return ray


def ray_results(todo: list[Source], config: PreprocessConfig) -> Iterator[VideoResult]:
    """Processes ``todo`` on ``config.workers`` actors and yields each video's result as it completes."""
    ray = _import_ray()
    from ray.util import ActorPool

    started = not ray.is_initialized()
    if started:
        ray.init(address=config.ray_address, include_dashboard=False, log_to_driver=False)
    try:
        gpus = float(ray.cluster_resources().get("GPU", 0.0))
        actor = ray.remote(
            num_cpus=1, num_gpus=min(gpus / config.workers, 1.0), max_restarts=RETRIES, max_task_retries=RETRIES
        )(VideoWorker)
        workers = [actor.remote(config) for _ in range(min(config.workers, max(len(todo), 1)))]
        pool = ActorPool(workers)
        yield from pool.map_unordered(lambda worker, source: worker.process.remote(source), todo)
        for worker in workers:
            ray.kill(worker)
    finally:
        if started:
            ray.shutdown()
