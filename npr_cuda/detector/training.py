"""Training the NPR detector with the official recipe, on one or several processes.

Recipe (official train.py and README): Adam (lr 2e-4, betas 0.9/0.999), global batch 32,
BCEWithLogitsLoss, 50 epochs; at the end of epoch e (counted from 0), if e % 10 == 0 and e != 0,
lr *= 0.9, never below 1e-6 (so after epochs 11, 21, 31, ... counted from 1). Train transform:
Resize 256x256 -> [blur, JPEG: off by default] -> RandomCrop 224 -> RandomHorizontalFlip ->
ToTensor -> ImageNet Normalize. Every image of an epoch is trained on, the last partial batch
included, as the official DataLoader does. Validation (accuracy, AP) after every epoch with
Resize 256 + CenterCrop 224. ``recipe="GenImage"`` swaps both transforms for the GenImage
recipe's (:mod:`.genimage`: small images tiled instead of resized).

A step's loss is the mean over the images of the whole step, all processes together: a process
whose images were broken files contributes fewer (or none, with an empty batch that still joins
the gradient all-reduce; see :mod:`.processes`), and the gradient stays the mean over the images
trained on, as one process would compute it.

Reproducible and resumable by construction: the order of an epoch is a permutation drawn from
(seed, epoch), and each sample's random crop, flip, blur and JPEG quality from (seed, epoch,
index), so neither the number of data workers nor an interruption changes what the model sees.
A checkpoint (:mod:`.checkpoint`) is written atomically after every epoch, every
``save_every`` steps, and on Ctrl-C or SIGTERM; ``resume`` continues from it at the exact step.

:func:`train` takes a :class:`TrainConfig` and raises on bad settings (ValueError), when a
signal stopped it (:class:`Interrupted`, after the checkpoint is written), when most of an
epoch's images could not be used (:class:`UnusableData`) and when the weights stopped being
numbers (:class:`Diverged`, the last good checkpoint kept); the command line is
``npr_cuda.cli.train``.
"""

import io
import json
import math
import os
import signal
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler, Sampler
from torchvision.transforms import functional as TF

from . import genimage
from .checkpoint import CheckpointWriteError, TrainingState, load_weights, read_training_state, save_training_state
from .data import IMAGENET_MEAN, IMAGENET_STD, ImageDataset, Protocol, eval_transform, make_loader
from .metrics import binary_metrics, json_safe
from .model import NPR_IMPLEMENTATIONS, npr_resnet50
from .predict import predict
from .processes import Processes, StopRequests
from .progress import progress_bar
from .speed import COMPILE_MIN_TRAIN_STEPS, Compiled, SpeedOptions, auto_compiles, fast_detector
from .train_config import AMP_DTYPES, MAX_SEED, MIN_CROP_SIZE, RECIPES, ConfigError, TrainConfig  # noqa: F401

LR_DECAY = 0.9
DIVERGED = "diverged"  # what the main process's save reports for weights that hold NaN or Inf
MIN_LR = 1e-6
# A run fails when more than half of the images read so far in an epoch could not be used,
# judged once this many have been read (all processes together), and at the epoch's end.
SKIP_VERDICT_IMAGES = 256


# ------------------------------------------------------------------------------------- data
class TrainTransform:
    """The official train transform, with every random choice drawn from a given generator."""

    def __init__(
        self,
        load_size=256,
        crop_size=224,
        flip=True,
        blur_prob=0.0,
        blur_sigma=(0.0, 3.0),
        jpeg_prob=0.0,
        jpeg_quality=(30, 100),
    ):
        self.load_size, self.crop_size, self.flip = load_size, crop_size, flip
        self.blur_prob, self.blur_sigma = blur_prob, blur_sigma
        self.jpeg_prob, self.jpeg_quality = jpeg_prob, jpeg_quality

    def __call__(self, image: Image.Image, gen: torch.Generator) -> torch.Tensor:
        def uniform():
            return torch.rand((), generator=gen).item()

        image = TF.resize(image, [self.load_size, self.load_size])
        if uniform() < self.blur_prob:  # the official order: augment after resize, before crop
            low, high = self.blur_sigma
            image = image.filter(ImageFilter.GaussianBlur(radius=low + (high - low) * uniform()))
        if uniform() < self.jpeg_prob:
            low, high = self.jpeg_quality
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=int(torch.randint(low, high + 1, (), generator=gen)))
            image = Image.open(buffer).convert("RGB")
        top = int(torch.randint(0, self.load_size - self.crop_size + 1, (), generator=gen))
        left = int(torch.randint(0, self.load_size - self.crop_size + 1, (), generator=gen))
        image = TF.crop(image, top, left, self.crop_size, self.crop_size)
        if self.flip and uniform() < 0.5:
            image = TF.hflip(image)
        return TF.normalize(TF.to_tensor(image), IMAGENET_MEAN, IMAGENET_STD)


def sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    entropy = np.random.SeedSequence([seed, epoch, index]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(entropy[0]) << 32 | int(entropy[1]))


class TrainDataset(ImageDataset):
    """ImageDataset whose augmentation is drawn from (seed, epoch, index); Failure if broken."""

    def __init__(
        self, samples: Sequence[Tuple[str, int]], transform: TrainTransform, seed: int, max_pixels: Optional[int]
    ):
        super().__init__(samples, transform, max_pixels)
        self.seed, self.epoch = seed, 0

    def transform_image(self, image: Image.Image, index: int) -> torch.Tensor:
        return self.transform(image, sample_generator(self.seed, self.epoch, index))


class SkipFirst(Sampler):
    """The indices of `sampler` after the first `skip` (to resume inside an epoch)."""

    def __init__(self, sampler: Sampler, skip: int):
        self.sampler, self.skip = sampler, skip

    def __iter__(self):
        return iter(list(self.sampler)[self.skip :])

    def __len__(self):
        return max(0, len(self.sampler) - self.skip)


# ------------------------------------------------------------------------------------ steps
def train_step(model, optimizer, images, labels, scaler=None, amp_dtype=None, weight=None) -> float:
    """One step of the recipe: BCEWithLogitsLoss on the logits, backward, optimizer step; returns
    the mean loss over `images` (NaN for none). The loss backpropagated is the sum over `images`
    times `weight`, by default 1 / len(images): their mean. Under DDP, which averages the
    processes' gradients, a weight of processes / images in the step (all processes) makes the
    gradient the mean over the step's images wherever they are, an empty batch included."""
    with torch.autocast(images.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        logits = model(images).squeeze(1).float()
        losses = F.binary_cross_entropy_with_logits(logits, labels.float(), reduction="none")
    total = losses.sum()
    optimizer.zero_grad(set_to_none=True)
    loss = total * weight if weight is not None else total / max(len(labels), 1)
    if scaler is None:
        loss.backward()
        optimizer.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    return total.item() / len(labels) if len(labels) else math.nan


def decayed_lr(lr: float) -> float:
    return max(lr * LR_DECAY, MIN_LR)


# ------------------------------------------------------------------------------------ train


class UnusableData(Exception):
    """More than half of an epoch's images could not be used (broken files, or a fault that
    fails every image): the run stops, saying why, rather than train on nothing."""

    def __init__(self, epoch: int, skipped: int, read: int, failures: Sequence):
        reasons = Counter(failure.reason for failure in failures)
        why = " (on the other processes)"
        if reasons:
            reason, count = reasons.most_common(1)[0]
            example = next(failure.path for failure in failures if failure.reason == reason)
            why = f"; the most frequent reason ({count} times here): {reason} (e.g. {example})"
        super().__init__(f"epoch {epoch + 1}: {skipped} of {read} images could not be used, more than half{why}")


class Diverged(Exception):
    """The model's weights hold NaN or Inf; the checkpoint on disk was not overwritten."""


@dataclass
class EpochTally:
    """What an epoch has read so far: images trained on and skipped, over all processes (every
    process agreed the counts), and this process's losses and skipped files."""

    trained: int = 0
    skipped: int = 0
    losses: List[float] = field(default_factory=list)
    failures: list = field(default_factory=list)

    def verdict(self, epoch: int, final: bool) -> None:
        """UnusableData when more than half of the images read could not be used: judged from
        SKIP_VERDICT_IMAGES images on, and at the epoch's end whatever their number. The counts
        are the same in every process, and so is the verdict."""
        read = self.trained + self.skipped
        if 2 * self.skipped > read and (final or read >= SKIP_VERDICT_IMAGES):
            raise UnusableData(epoch, self.skipped, read, self.failures)


class Interrupted(Exception):
    """Training stopped on a signal after its checkpoint was written; `signum` says which."""

    def __init__(self, signum: int, epoch: int, step: int, checkpoint_path: str):
        super().__init__(
            f"{signal.Signals(signum).name}: stopped at epoch {epoch + 1}, step {step}; "
            f"resume with --resume {checkpoint_path}"
        )
        self.signum, self.checkpoint_path = signum, checkpoint_path


def train(
    config: TrainConfig, train_samples: List[Tuple[str, int]], val_samples: Optional[List[Tuple[str, int]]]
) -> dict:
    """Runs the recipe; returns the last epoch's log record. Every setting, the data's size and
    the checkpoint to resume from are checked before the first step (ValueError, CheckpointError,
    FileNotFoundError)."""
    config.validate()
    procs = Processes(torch.device(config.device))
    try:
        run = _Training(config, procs, train_samples, val_samples)
        record = {}
        with StopRequests(procs) as stop:
            while run.epoch < config.niter:
                record = run.one_epoch(stop)
                run.validate(record)
                run.end_epoch(record)
        return record
    finally:
        procs.close()


class _Training:
    """One training run's state and its steps: set-up (the model, optimizer, data and resume
    point), one epoch, validation, the checkpoint and the log."""

    def __init__(self, config: TrainConfig, procs: Processes, train_samples, val_samples):
        self.config, self.procs, self.device = config, procs, procs.device
        if config.batch_size % procs.world:
            raise ConfigError("batch_size", f"{config.batch_size} is not divisible by the {procs.world} processes")
        self.per_process = config.batch_size // procs.world
        # Each process gets len // world images an epoch (DistributedSampler, drop_last: fewer
        # than `world` images left out, others each epoch), the last partial batch included.
        self.steps_per_epoch = math.ceil(len(train_samples) // procs.world / self.per_process)
        if self.steps_per_epoch == 0:
            raise ConfigError(
                "nproc_per_node", f"at most {len(train_samples)}, one training image per process at least"
            )
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        torch.manual_seed(config.seed)  # the initial weights
        self.model = npr_resnet50(
            npr_impl=NPR_IMPLEMENTATIONS[config.npr], window=config.npr_window, anchor=config.npr_anchor
        ).to(self.device, memory_format=self.memory_format)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr, betas=(config.beta1, 0.999))
        self.amp_dtype = AMP_DTYPES[config.amp]
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype is torch.float16)
        self.checkpoint_path = os.path.join(config.output, "last.pth")
        # The position in the epoch is counted in images, so a run resumed with another batch size
        # (or number of processes) skips exactly the images already trained on.
        self.epoch, self.samples_done, self.total_steps = 0, 0, 0
        self.saved = None  # (epoch, samples_done) of the checkpoint on disk, if this run knows one
        if config.resume:
            self.resume(config.resume)
        if procs.main:
            os.makedirs(config.output, exist_ok=True)  # now, not at the first save
        self.ddp_model = DistributedDataParallel(self.model) if procs.world > 1 else self.model
        self.compile_model()
        self.dataset, self.sampler = self.training_data(train_samples)
        self.val_loader = self.validation_loader(val_samples)

    def resume(self, path: str):
        """Continues from the checkpoint at `path`, which must have been trained with the same
        window and anchor and have epochs and images left that this run can do."""
        config, resumed = self.config, read_training_state(path)
        for name in ("npr_window", "npr_anchor"):
            saved = tuple(resumed.config.get(name, getattr(TrainConfig, name)))  # absent: the official one
            if saved != tuple(getattr(config, name)):
                raise ConfigError(name, f"{tuple(getattr(config, name))}, but {path} was trained with {saved}")
        saved_recipe = resumed.config.get("recipe", "ForenSynths")  # absent: written before recipes
        if saved_recipe != config.recipe:
            raise ConfigError("recipe", f"{config.recipe}, but {path} was trained with the {saved_recipe} recipe")
        load_weights(self.model, path, resumed.model)
        self.optimizer.load_state_dict(resumed.optimizer)
        if self.scaler.is_enabled() and not resumed.scaler:  # trained without fp16 so far
            if self.procs.main:
                print(f"training: {path} was trained without fp16: starts a fresh fp16 loss scale", file=sys.stderr)
        else:
            self.scaler.load_state_dict(resumed.scaler)  # a disabled scaler ignores it
        self.epoch, self.samples_done, self.total_steps = resumed.epoch, resumed.samples_done, resumed.total_steps
        if os.path.abspath(path) == os.path.abspath(self.checkpoint_path):  # what a divergence would keep
            self.saved = (self.epoch, self.samples_done)
        if self.epoch >= config.niter:
            raise ConfigError("niter", f"{config.niter}, but {path} has completed {self.epoch} epochs already")
        if self.samples_done % self.procs.world:
            raise ConfigError(
                "resume", f"{self.samples_done} images done in the epoch do not split over {self.procs.world} processes"
            )

    def compile_model(self):
        """The model each step runs: compiled where --compile (auto: the run is long enough) says."""
        config = self.config
        steps_left = (config.niter - self.epoch) * self.steps_per_epoch - self.samples_done // config.batch_size
        self.compiled = auto_compiles(config.compile, self.device, steps_left >= COMPILE_MIN_TRAIN_STEPS)
        self.step_model = Compiled(self.ddp_model) if self.compiled else self.ddp_model
        if self.procs.main and config.progress:
            how = "compiled (the first step compiles: about 35 s on 2 CPU cores)" if self.compiled else "uncompiled"
            layout = "channels_last" if config.channels_last else "NCHW"
            print(f"training: {steps_left} steps on {self.device}, model {how}, {layout}", file=sys.stderr)

    def training_data(self, train_samples):
        config, procs = self.config, self.procs
        if config.recipe == genimage.RECIPE:
            transform = genimage.GenImageTrainTransform(crop_size=config.crop_size, flip=config.flip)
        else:
            transform = TrainTransform(
                load_size=config.load_size,
                crop_size=config.crop_size,
                flip=config.flip,
                blur_prob=config.blur_prob,
                blur_sigma=config.blur_sigma,
                jpeg_prob=config.jpeg_prob,
                jpeg_quality=config.jpeg_quality,
            )
        dataset = TrainDataset(train_samples, transform, config.seed, config.max_pixels)
        sampler = DistributedSampler(
            dataset, num_replicas=procs.world, rank=procs.rank, shuffle=True, seed=config.seed, drop_last=True
        )
        return dataset, sampler

    def validation_loader(self, val_samples):
        """This process's share of the validation images (every world-th one from its rank);
        None, in every process, without a validation set."""
        config, procs = self.config, self.procs
        if not val_samples:
            return None
        self.val_order = {path: i for i, (path, _) in enumerate(val_samples)}
        if config.recipe == genimage.RECIPE:
            protocol = genimage.validation_protocol(config.crop_size)
        else:
            protocol = Protocol(resize=True, crop=True, load_size=config.load_size, crop_size=config.crop_size)
        share = val_samples[procs.rank :: procs.world]
        dataset = ImageDataset(share, eval_transform(protocol), config.max_pixels)
        return make_loader(dataset, config.batch_size, config.workers, pin_memory=self.device.type == "cuda")

    def epoch_loader(self):
        """The rest of this epoch's batches for this process, from where a resumed run left off."""
        self.dataset.epoch = self.epoch
        self.sampler.set_epoch(self.epoch)
        return make_loader(
            self.dataset,
            self.per_process,
            self.config.workers,
            sampler=SkipFirst(self.sampler, self.samples_done // self.procs.world),
            pin_memory=self.device.type == "cuda",
        )

    def one_epoch(self, stop: StopRequests) -> dict:
        """Trains the rest of the epoch and returns its log record; on a stop request, writes the
        checkpoint and raises Interrupted. Every process runs the same steps and collectives,
        whatever its batches hold (see processes.py)."""
        config, procs = self.config, self.procs
        loader = self.epoch_loader()
        self.ddp_model.train()
        tally, start = EpochTally(), time.perf_counter()
        progress = progress_bar(
            loader,
            desc=f"epoch {self.epoch + 1}/{config.niter}",
            unit="batch",
            disable=not procs.main or not config.progress,
            initial=self.samples_done // config.batch_size,
            total=self.samples_done // config.batch_size + len(loader),
        )
        stopping, agreed = False, True
        try:
            for batch in progress:
                stopping = self.train_batch(batch, tally, stop)
                if stopping:
                    break
                rate = tally.trained / max(time.perf_counter() - start, 1e-9)
                progress.set_postfix(loss=f"{tally.losses[-1]:.4f}" if tally.losses else "-", img_s=f"{rate:.1f}")
                if config.save_every and self.total_steps % config.save_every == 0:
                    self.checkpoint()
            stopping = stopping or stop.settle(procs.sums(stop.asked()))  # asked during the last step
        except RuntimeError:  # a Ctrl-C also stops the data workers, and the next fetch fails
            if stop.signum is None:
                raise
            stopping, agreed = True, False  # in this process alone: the others may be at another step
        finally:
            progress.close()
        if stopping:
            self.checkpoint(agreed)
            raise Interrupted(stop.signum, self.epoch, self.samples_done // config.batch_size, self.checkpoint_path)
        tally.verdict(self.epoch, final=True)
        return self.epoch_record(tally, time.perf_counter() - start)

    def train_batch(self, batch, tally: EpochTally, stop: StopRequests) -> bool:
        """One step on this process's `batch`, as every process agreed it in one all-reduce: the
        step's images over all processes (none: every process skips it), the files skipped, and
        the stop requests. True, with nothing trained, when a process was asked to stop."""
        images, labels = self.batch_tensors(batch)
        trained, skipped, *asked = self.procs.sums([len(labels), len(batch.failures), *stop.asked()])
        if stop.settle(asked):
            return True
        tally.failures += batch.failures
        tally.trained, tally.skipped = tally.trained + int(trained), tally.skipped + int(skipped)
        if trained:
            loss = self.step(images, labels, int(trained))
            if len(labels):
                tally.losses.append(loss)
        self.samples_done += (len(labels) + len(batch.failures)) * self.procs.world  # equal in every process
        self.total_steps += 1
        tally.verdict(self.epoch, final=False)
        return False

    def batch_tensors(self, batch):
        """This process's images and labels in `batch` (training crops have one size), or an
        empty batch of that size when every file in it was skipped."""
        if not batch.groups:
            crop = self.config.crop_size
            return torch.empty(0, 3, crop, crop), torch.empty(0, dtype=torch.int64)
        return torch.cat([group[0] for group in batch.groups]), torch.cat([group[1] for group in batch.groups])

    def step(self, images, labels, images_in_step: int) -> float:
        """A training step on this process's images, weighted by the step's images on all
        processes; an empty batch still runs (eager), to join the gradient all-reduce."""
        images = images.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        labels = labels.to(self.device, non_blocking=True)
        weight = self.procs.world / images_in_step if self.procs.world > 1 else None
        model = self.step_model if len(labels) else self.ddp_model
        if self.compiled and len(labels):
            torch._dynamo.maybe_mark_dynamic(images, 0)  # a batch short of a broken file: no recompile
        return train_step(model, self.optimizer, images, labels, self.scaler, self.amp_dtype, weight)

    def epoch_record(self, tally: EpochTally, seconds: float) -> dict:
        """The learning rate decayed on the official schedule, and the epoch's log record (the
        losses and skipped files of every process: collectives)."""
        if self.epoch % self.config.delr_freq == 0 and self.epoch != 0:  # the official schedule: at the epoch's end
            for group in self.optimizer.param_groups:
                group["lr"] = decayed_lr(group["lr"])
        loss_sum, losses = self.procs.sums([sum(tally.losses), len(tally.losses)])
        return {
            "epoch": self.epoch + 1,
            "lr": self.optimizer.param_groups[0]["lr"],
            "steps": self.total_steps,
            "images": tally.trained,  # trained on in this epoch (since a resume), all processes
            "train_loss": loss_sum / losses if losses else math.nan,
            "images_per_s": tally.trained / seconds if seconds else math.nan,
            "skipped_images": self.procs.gather([failure.path for failure in tally.failures]),
        }

    def validate(self, record: dict):
        """Accuracy and AP on the validation images, into `record`. The processes share the
        work: each scores its share, and every process gathers all the scores in the set's order
        and computes what one process would. (When the main process validated alone, the others
        waited in a collective, and a validation longer than its timeout ended the run.)"""
        if self.val_loader is None:
            return
        self.procs.take_main_buffers(self.model)  # every process scores the checkpoint's model
        detector = fast_detector(self.model, self.device, SpeedOptions(compile="off"))
        progress = self.config.progress and self.procs.main
        mine = predict(detector, self.val_loader, desc="validate", progress=progress)
        scored = self.procs.gather(list(zip(mine.paths, mine.labels, mine.probs)))
        scored.sort(key=lambda item: self.val_order[item[0]])
        labels, probs = [label for _, label, _ in scored], [prob for _, _, prob in scored]
        metrics = binary_metrics(labels, probs)
        skipped = sorted(self.procs.gather([failure.path for failure in mine.failures]), key=self.val_order.get)
        record.update(val_images=len(scored), val_skipped_images=skipped, val_acc=metrics["acc"], val_ap=metrics["ap"])
        not_numbers = int(np.isnan(probs).sum())
        if not_numbers and self.procs.main:
            print(
                f"training: validation: {not_numbers} of {len(probs)} probabilities are NaN "
                "(counted as real; AP undefined)",
                file=sys.stderr,
            )

    def end_epoch(self, record: dict):
        """The epoch counted done, its checkpoint written and its record logged."""
        if self.device.type == "cuda":
            record["peak_memory_mib"] = torch.cuda.max_memory_allocated(self.device) / 2**20
        self.epoch, self.samples_done = self.epoch + 1, 0
        try:
            self.checkpoint()
        except Diverged:
            self.log(record)  # the epoch's losses say when
            raise
        self.log(record)

    def checkpoint(self, agreed: bool = True):
        """The training state, written atomically by the main process. What the main process
        found, every process raises alike (none is left waiting in a collective): Diverged when
        the weights hold NaN or Inf (the checkpoint on disk, if any, holds the last good state
        and is kept), CheckpointWriteError when the write failed. Not `agreed` (a stop that only
        this process saw, which the others may meet at another step), no collective: the main
        process raises what it found, the others nothing."""
        outcome = self.save() if self.procs.main else None
        if agreed:
            outcome = self.procs.main_says(outcome)
        if outcome == DIVERGED:
            raise Diverged(self.divergence_message())
        if outcome:
            raise CheckpointWriteError(outcome)
        self.saved = (self.epoch, self.samples_done)

    def save(self) -> Optional[str]:
        """Writes the checkpoint unless the weights hold NaN or Inf; None, DIVERGED, or why the
        checkpoint could not be written."""
        state_values = [v for v in self.model.state_dict().values() if v.is_floating_point()]
        if not torch.stack([torch.isfinite(v).all() for v in state_values]).all():
            return DIVERGED
        state = TrainingState(
            model=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(),
            scaler=self.scaler.state_dict(),
            epoch=self.epoch,
            step=self.samples_done // self.config.batch_size,
            samples_done=self.samples_done,
            total_steps=self.total_steps,
            config=asdict(self.config),
        )
        try:
            save_training_state(self.checkpoint_path, state)
        except CheckpointWriteError as error:
            return str(error)
        except Exception as error:  # anything else too: the other processes wait for the outcome
            return f"could not write checkpoint {self.checkpoint_path}: {type(error).__name__}: {error}"
        return None

    def divergence_message(self) -> str:
        epoch = self.epoch if self.samples_done == 0 else self.epoch + 1
        if self.saved is None:
            kept = f"this run wrote no checkpoint to {self.checkpoint_path}"
        elif self.saved[1] == 0:
            kept = f"{self.checkpoint_path} keeps epoch {self.saved[0]}"
        else:
            kept = f"{self.checkpoint_path} keeps epoch {self.saved[0] + 1}, image {self.saved[1]}"
        return f"the model diverged in epoch {epoch} (NaN or Inf in its weights; a lower --lr may help): {kept}"

    def log(self, record: dict):
        if not self.procs.main:
            return
        with open(os.path.join(self.config.output, "log.jsonl"), "a") as log:
            log.write(json.dumps(json_safe(record), allow_nan=False) + "\n")  # strict JSON: NaN as null
        if self.config.progress:
            summary = ", ".join(f"{k} {v:.4g}" for k, v in record.items() if isinstance(v, float))
            print(f"epoch {self.epoch}: {summary}", file=sys.stderr)
