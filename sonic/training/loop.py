"""The training loop on ``accelerate``: one GPU, many GPUs or nodes (DDP), DeepSpeed, or the CPU.

:func:`train` builds a :class:`Run` (models, data, optimiser, trackers; resumed from a checkpoint when asked), runs
:func:`train_step` on every micro-batch until ``max_train_steps``, and exports the weights. A resumed run continues
bit-exact: the data order comes from a sampler seeded by (seed, epoch), each clip's own draws from (seed, epoch,
index), and the loss's draws from a per-process generator saved with the checkpoint, so the losses after resuming
equal those of an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from accelerate import Accelerator, PartialState
from accelerate.data_loader import DataLoaderDispatcher, DataLoaderShard
from accelerate.utils import gather_object, set_seed
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from sonic.checkpoints import CheckpointError, SonicComponents
from sonic.config import TrainingConfig
from sonic.data.dataset import SonicClipDataset
from sonic.training.bucket import compute_bucket_loss
from sonic.training.builders import (
    make_accelerator,
    make_dataloader,
    make_heldout_dataset,
    make_lr_scheduler,
    make_optimizer,
    place_frozen,
)
from sonic.training.checkpointing import (
    SavedState,
    check_run_kind,
    checkpoint_step,
    ema_state,
    load_ema,
    read_checkpoint,
    resume_path,
    save_checkpoint,
)
from sonic.training.curves import PLOT, history_until, plot_history, write_history
from sonic.training.export import export_all
from sonic.training.heldout import HeldOutSet, warn_if_deaf
from sonic.training.latent_cache import CachedClipDataset, build_latent_cache
from sonic.training.loss import compute_loss
from sonic.training.model import SonicDenoiser, TrainingModels, load_training_components, trainable_parameters
from sonic.training.validation import log_validation

logger = logging.getLogger(__name__)
LossFn = Callable[[TrainingModels, dict, TrainingConfig, torch.Generator], tuple[torch.Tensor, dict[str, float]]]


@dataclass
class TrainState:
    """Progress a checkpoint restores besides what accelerate saves itself: the optimiser-step counter, the skipped
    steps, and every process's generator of the loss's random draws (collected from all processes when saved)."""

    generator: torch.Generator
    step: int = 0
    skipped_steps: int = 0
    window_finite: bool = True  # no NaN/inf loss in the current accumulation window
    window_losses: list[float] = field(default_factory=list)

    def saved(self) -> SavedState:
        """Collective (every process calls it): the counters and each process's generator state ``generator.<i>``."""
        generators = gather_object([self.generator.get_state()])
        values = {"step": self.step, "skipped_steps": self.skipped_steps}
        return values, {f"generator.{i}": state for i, state in enumerate(generators)}

    def restore(self, saved: SavedState, path: Path) -> None:
        values, tensors = saved
        process, count = PartialState(), sum(key.startswith("generator.") for key in tensors)
        if count != process.num_processes:
            raise CheckpointError(f"{path} was written by {count} processes: resume with as many")
        self.generator.set_state(tensors[f"generator.{process.process_index}"])
        self.step, self.skipped_steps = values["step"], values["skipped_steps"]


@dataclass
class Run:
    """Everything one training run holds."""

    config: TrainingConfig
    accelerator: Accelerator
    components: SonicComponents
    models: TrainingModels  # models.trained is the accelerate-wrapped module
    loss_fn: LossFn
    parameters: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    lr_scheduler: torch.optim.lr_scheduler.LRScheduler
    dataset: SonicClipDataset
    dataloader: DataLoaderShard | DataLoaderDispatcher  # accelerator.prepare's (it has set_epoch)
    state: TrainState
    ema: EMAModel | None
    steps_per_epoch: int
    max_steps: int
    heldout: HeldOutSet | None = None  # the main process's held-out clips (validation_data / validation_share)
    history: list[dict[str, float]] = field(default_factory=list)  # one entry per held-out validation
    losses: dict[int, float] = field(default_factory=dict)  # step -> loss (mean over micro-batches and processes)


def setup(config: TrainingConfig) -> Run:
    """Models, data, optimiser and trackers, all prepared by accelerate, and resumed when asked (the checkpoint and
    the dataset are checked first: a bad one is refused before any model work)."""
    checkpoint = resume_path(config)
    saved = read_checkpoint(checkpoint) if checkpoint is not None else None  # every file checked first, loads no code
    if checkpoint is not None:
        check_run_kind(checkpoint, config)
    dataset, dataloader = make_dataloader(config)  # before the models: a dataset problem is found in seconds
    heldout_dataset = make_heldout_dataset(config)
    accelerator = make_accelerator(config)
    set_seed(config.seed)
    components = load_training_components(config)
    parameters = trainable_parameters(components, config)
    if config.gradient_checkpointing:
        components.unet.enable_gradient_checkpointing()
    trained = (
        components.audio2bucket if config.train_audio2bucket else SonicDenoiser(components.unet, components.audio2token)
    )
    dataloader = accelerator.prepare(dataloader)  # first: its per-process length sets the number of steps
    steps_per_epoch = math.ceil(len(dataloader) / config.gradient_accumulation_steps)
    max_steps = config.max_train_steps or config.num_train_epochs * steps_per_epoch
    optimizer = make_optimizer(parameters, config)
    lr_scheduler = make_lr_scheduler(optimizer, config, accelerator.num_processes, max_steps)
    trained, optimizer, lr_scheduler = accelerator.prepare(trained, optimizer, lr_scheduler)
    place_frozen(components, config, accelerator.device)
    ema = EMAModel(parameters, decay=config.ema_decay) if config.use_ema else None
    if ema is not None:
        ema.to(accelerator.device)
    state = TrainState(torch.Generator().manual_seed(config.seed + accelerator.process_index))
    models = TrainingModels(trained, components.vae, components.image_encoder)
    if isinstance(dataset, CachedClipDataset):
        build_latent_cache(dataset, models)
    loss_fn = compute_bucket_loss if config.train_audio2bucket else compute_loss
    run = Run(
        config,
        accelerator,
        components,
        models,
        loss_fn,
        parameters,
        optimizer,
        lr_scheduler,
        dataset,
        dataloader,
        state,
        ema,
        steps_per_epoch,
        max_steps,
    )
    if heldout_dataset is not None and accelerator.is_main_process:
        run.heldout = HeldOutSet.build(heldout_dataset, models, config)
    if checkpoint is not None and saved is not None:
        resume(run, checkpoint, saved)
        run.history = history_until(validation_folder(config), run.state.step)
    return run


def validation_folder(config: TrainingConfig) -> Path:
    return Path(config.output_dir) / "validation"


def resume(run: Run, path: Path, saved: SavedState) -> None:
    """accelerate's state (its loads are weights-only), then the train state and EMA of ``saved``."""
    run.accelerator.load_state(str(path))
    run.state.restore(saved, path)
    load_ema(run.ema, saved, path)
    if run.state.step != checkpoint_step(path):
        raise CheckpointError(f"{path}: its train state is at step {run.state.step}, not {checkpoint_step(path)}")
    logger.info("resumed from %s at step %d", path, run.state.step)


def checkpoint_state(run: Run) -> SavedState:
    """Collective: Sonic's part of a checkpoint, the train state and the EMA."""
    values, tensors = run.state.saved()
    if run.ema is not None:
        ema_values, ema_tensors = ema_state(run.ema)
        values, tensors = {**values, **ema_values}, {**tensors, **ema_tensors}
    return values, tensors


def train_step(run: Run, batch: dict) -> dict[str, float] | None:
    """One micro-batch: loss, backward, and at the end of an accumulation window the clipped optimiser step.

    A NaN/inf loss on any process skips its backward on every process (they must agree) and then the whole window's
    optimiser step, which is counted. Returns the step's metrics when an optimiser step was due, else None."""
    accelerator, state = run.accelerator, run.state
    with accelerator.accumulate(run.models.trained):
        loss, metrics = run.loss_fn(run.models, batch, run.config, state.generator)
        losses = accelerator.gather(loss.detach()[None])
        if torch.isfinite(losses).all():
            accelerator.backward(loss)
            state.window_losses.append(losses.mean().item())
        else:
            state.window_finite = False
        if not accelerator.sync_gradients:
            return None
        grad_norm = math.nan
        if state.window_finite:
            grad_norm = accelerator.clip_grad_norm_(run.parameters, run.config.max_grad_norm)
            run.optimizer.step()
            run.lr_scheduler.step()
            if run.ema is not None:
                run.ema.step(run.parameters)
        else:
            state.skipped_steps += 1
            logger.warning("non-finite loss at step %d: step skipped (%d so far)", state.step + 1, state.skipped_steps)
        run.optimizer.zero_grad(set_to_none=True)
    loss_value = sum(state.window_losses) / len(state.window_losses) if state.window_finite else math.nan
    state.window_finite, state.window_losses = True, []
    grad_norm = float(grad_norm) if grad_norm is not None else math.nan  # DeepSpeed reports no norm
    return {
        "loss": loss_value,
        "grad_norm": grad_norm,
        "lr": float(run.lr_scheduler.get_last_lr()[0]),
        "skipped_steps": state.skipped_steps,
        **metrics,
    }


def batches(run: Run):
    """(epoch, batch) from the run's position on: the resumed epoch skips the batches it already trained on."""
    first_epoch, done = divmod(run.state.step, run.steps_per_epoch)
    epoch = first_epoch
    while True:
        skip = done * run.config.gradient_accumulation_steps if epoch == first_epoch else 0
        loader = run.accelerator.skip_first_batches(run.dataloader, skip) if skip else run.dataloader
        run.dataset.set_epoch(epoch)
        loader.set_epoch(epoch)
        yield from loader
        epoch += 1


def train(config: TrainingConfig) -> Run:
    """Trains until ``max_train_steps`` (or ``num_train_epochs``), then exports; returns the finished run."""
    run = setup(config)
    accelerator, state = run.accelerator, run.state
    hparams = {k: ",".join(v) if isinstance(v, list) else v for k, v in config.to_dict().items() if v is not None}
    accelerator.init_trackers(config.tracker_project_name, hparams)  # TensorBoard takes scalars and strings only
    logger.info(
        "training %s on %d process(es): %d clips, %d steps, %d parameters trained",
        type(run.models.trained).__name__,
        accelerator.num_processes,
        len(run.dataset),
        run.max_steps,
        sum(p.numel() for p in run.parameters),
    )
    progress = tqdm(
        total=run.max_steps, initial=state.step, desc="train", disable=not accelerator.is_local_main_process
    )
    if state.step == 0:
        validate(run)  # the untrained model: the reference every later validation is read against
    tick = time.perf_counter()
    for batch in batches(run):
        if state.step >= run.max_steps:
            break
        metrics = train_step(run, batch)
        if metrics is None:
            continue
        state.step += 1
        now = time.perf_counter()
        metrics.update(throughput(run, now - tick))
        tick = now
        after_step(run, metrics, progress)
    progress.close()
    finish(run)
    return run


def throughput(run: Run, seconds: float) -> dict[str, float]:
    clips = run.config.train_batch_size * run.config.gradient_accumulation_steps * run.accelerator.num_processes
    metrics = {"step_time": seconds, "samples_per_s": clips / seconds}
    if torch.cuda.is_available():
        metrics["gpu_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
    return metrics


def after_step(run: Run, metrics: dict[str, float], progress: tqdm) -> None:
    """Logging, checkpoint and validation video after optimiser step ``run.state.step``."""
    config, accelerator, step = run.config, run.accelerator, run.state.step
    run.losses[step] = metrics["loss"]
    accelerator.log(metrics, step=step)
    progress.update()
    progress.set_postfix(loss=f"{metrics['loss']:.4f}", lr=f"{metrics['lr']:.2e}", skipped=run.state.skipped_steps)
    if step % config.checkpointing_steps == 0:
        save_checkpoint(accelerator, config, step, checkpoint_state(run))
    if step % config.validation_steps == 0:
        validate(run)
    if config.validation_image is not None and step % config.validation_steps == 0:
        if accelerator.is_main_process:
            with ema_weights(run):
                log_validation(run.components, config, accelerator, step)
        accelerator.wait_for_everyone()


def validate(run: Run) -> None:
    """The held-out loss and audio gaps of the current (EMA) weights, on the main process: logged to the trackers,
    appended to ``validation/loss.jsonl`` and plotted in ``validation/loss.png``; warns when the model ignores the
    audio (sonic.training.heldout)."""
    accelerator, step = run.accelerator, run.state.step
    if run.heldout is not None:
        trained = accelerator.unwrap_model(run.models.trained)  # no DDP collectives on one process
        trained.eval()
        with ema_weights(run), accelerator.autocast():
            metrics = run.heldout.evaluate(replace(run.models, trained=trained))
        trained.train()
        accelerator.log({f"val/{key}": value for key, value in metrics.items()}, step=step)
        logger.info(
            "step %d: held-out loss %.4f, audio gap %+.4f +- %.4f (mouth %+.4f +- %.4f)",
            step,
            metrics["loss"],
            metrics["audio_gap"],
            metrics["audio_gap_se"],
            metrics["audio_gap_mouth"],
            metrics["audio_gap_mouth_se"],
        )
        run.history.append({"step": step, **metrics})
        folder = validation_folder(run.config)
        write_history(folder, run.history)
        plot_history(run.history, folder / PLOT)
        warn_if_deaf(run.history)
    accelerator.wait_for_everyone()


@contextlib.contextmanager
def ema_weights(run: Run):
    """The EMA weights in the model for the duration of the block (validation), the trained ones restored after."""
    if run.ema is None:
        yield
        return
    run.ema.store(run.parameters)
    run.ema.copy_to(run.parameters)
    try:
        yield
    finally:
        run.ema.restore(run.parameters)


def finish(run: Run) -> None:
    """Exports the final (EMA when used) weights in the released layout and as a pipeline folder."""
    accelerator = run.accelerator
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if run.ema is not None:
            run.ema.copy_to(run.parameters)
        released, pipeline = export_all(run.components, run.config)
        logger.info("exported %s (released layout) and %s (pipeline folder)", released, pipeline)
    accelerator.end_training()
