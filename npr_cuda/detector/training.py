"""Training the NPR detector with the official recipe, on one or several processes.

Recipe (official train.py and README): Adam (lr 2e-4, betas 0.9/0.999), global batch 32,
BCEWithLogitsLoss, 50 epochs; at the end of epoch e (counted from 0), if e % 10 == 0 and e != 0,
lr *= 0.9, never below 1e-6. Train transform: Resize 256x256 -> [blur, JPEG: off by default] ->
RandomCrop 224 -> RandomHorizontalFlip -> ToTensor -> ImageNet Normalize. Validation (accuracy,
AP) after every epoch with Resize 256 + CenterCrop 224. ``recipe="GenImage"`` swaps both
transforms for the GenImage recipe's (:mod:`.genimage`: small images tiled instead of resized).

Reproducible and resumable by construction: the order of an epoch is a permutation drawn from
(seed, epoch), and each sample's random crop, flip, blur and JPEG quality from (seed, epoch,
index), so neither the number of data workers nor an interruption changes what the model sees.
A checkpoint (:mod:`.checkpoint`) is written atomically after every epoch, every
``save_every`` steps, and on Ctrl-C or SIGTERM; ``resume`` continues from it at the exact step.

:func:`train` takes a :class:`TrainConfig` and raises on bad settings (ValueError) or when a
signal stopped it (:class:`Interrupted`, after the checkpoint is written); the command line is
``npr_cuda.cli.train``.
"""

import io
import json
import math
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from PIL import Image, ImageFilter
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler, Sampler
from torchvision.transforms import functional as TF

from . import genimage
from .checkpoint import TrainingState, load_weights, read_training_state, save_training_state
from .data import DEFAULT_MAX_PIXELS, IMAGENET_MEAN, IMAGENET_STD, ImageDataset, Protocol, eval_transform, make_loader
from .metrics import binary_metrics
from .model import DEFAULT_ANCHOR, DEFAULT_WINDOW, NPR_IMPLEMENTATIONS, npr_resnet50
from .predict import predict
from .progress import progress_bar
from .speed import COMPILE_CHOICES, COMPILE_MIN_TRAIN_STEPS, Compiled, SpeedOptions, auto_compiles, fast_detector

LR_DECAY = 0.9
MIN_LR = 1e-6
# The transforms of a run: the default recipe's (Resize 256) or the GenImage recipe's (tiles).
RECIPES = ("ForenSynths", genimage.RECIPE)


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
def train_step(model, optimizer, images, labels, scaler=None, amp_dtype=None) -> float:
    """One step of the recipe: BCEWithLogitsLoss on the logits, backward, optimizer step."""
    with torch.autocast(images.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        loss = F.binary_cross_entropy_with_logits(model(images).squeeze(1).float(), labels.float())
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        optimizer.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    return loss.item()


def decayed_lr(lr: float) -> float:
    return max(lr * LR_DECAY, MIN_LR)


# -------------------------------------------------------------------------------- processes
class Processes:
    """This process's place among those torchrun started (one, when not under torchrun)."""

    def __init__(self, device: torch.device):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.device = device
        if device.type == "cuda":
            if self.world > 1:
                self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(self.device)
        if self.world > 1:
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self):
        if self.world > 1:
            dist.barrier()

    def mean(self, value: float) -> float:
        if self.world == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.item() / self.world

    def close(self):
        if self.world > 1:
            dist.destroy_process_group()


class StopRequests:
    """Turns the first Ctrl-C (SIGINT) or SIGTERM into a request to stop at the end of the
    current step, so that the checkpoint then written holds a consistent state; a second one
    acts at once. Under several processes every step agrees on stopping (any rank asked)."""

    def __init__(self, procs: "Processes"):
        self.procs, self.signum, self.previous, self.pid = procs, None, {}, os.getpid()

    def __enter__(self):
        for signum in (signal.SIGINT, signal.SIGTERM):
            # A signal ignored at start stays ignored (the convention Python itself follows: a
            # job started in the background of a script is not stopped by the terminal's Ctrl-C).
            if signal.getsignal(signum) is not signal.SIG_IGN:
                self.previous[signum] = signal.signal(signum, self.handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def handle(self, signum, frame):
        if os.getpid() != self.pid:  # a data worker (forked with this handler): the main process decides
            return
        self.signum = signum
        signal.signal(signum, self.previous[signum])
        if self.procs.main:
            name = signal.Signals(signum).name
            print(f"\ntraining: {name}: stopping after this step ({name} again to abort now)", file=sys.stderr)

    def requested(self) -> bool:
        if self.procs.world == 1:
            return self.signum is not None
        flag = torch.tensor([self.signum or 0], dtype=torch.int32, device=self.procs.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)  # any rank's signal stops every rank
        self.signum = self.signum or int(flag.item()) or None
        return self.signum is not None


# ------------------------------------------------------------------------------------ train
@dataclass
class TrainConfig:
    """The settings of a training run; the defaults are the official recipe."""

    output: str  # folder for last.pth and log.jsonl
    batch_size: int = 32  # global: split evenly over the processes
    lr: float = 2e-4
    beta1: float = 0.9
    niter: int = 50  # epochs
    delr_freq: int = 10  # lr x0.9 after every this many epochs
    seed: int = 100
    workers: int = 0
    load_size: int = 256
    crop_size: int = 224
    flip: bool = True
    blur_prob: float = 0.0
    blur_sigma: Tuple[float, float] = (0.0, 3.0)
    jpeg_prob: float = 0.0
    jpeg_quality: Tuple[int, int] = (30, 100)
    amp: str = "off"  # off, bf16 or fp16
    channels_last: bool = True  # oneDNN's and cuDNN's fastest layout (bench/RESULTS.md: training steps)
    compile: str = "auto"  # torch.compile the training step: auto, on, off (see speed.py)
    save_every: int = 1000  # also checkpoint every this many steps (0: epochs only)
    resume: Optional[str] = None  # a checkpoint to continue from
    device: str = "cpu"
    npr: str = "npr_cuda"  # a key of NPR_IMPLEMENTATIONS
    npr_window: Tuple[int, int] = DEFAULT_WINDOW  # NPR's window and anchor (the paper's ablation)
    npr_anchor: Tuple[int, int] = DEFAULT_ANCHOR
    max_pixels: Optional[int] = DEFAULT_MAX_PIXELS  # larger images are skipped
    progress: bool = True
    # The train and validation transforms, one of RECIPES; the GenImage recipe's seed and epochs
    # (genimage.SEED, genimage.EPOCHS) are the caller's to set, as npr-train --recipe does.
    recipe: str = "ForenSynths"

    def validate(self) -> None:
        """ConfigError naming the first setting that cannot work: everything is checked before
        the first step, so that no run dies at the end of an epoch on a bad setting."""

        def require(ok, field_name, expected):
            if not ok:
                raise ConfigError(field_name, f"expected {expected}, got {getattr(self, field_name)!r}")

        def finite(value):
            return isinstance(value, (int, float)) and math.isfinite(value)

        require(not os.path.exists(self.output) or os.path.isdir(self.output), "output", "a folder, not a file")
        require(self.batch_size >= 1, "batch_size", "at least 1")
        require(finite(self.lr) and self.lr > 0, "lr", "a finite number above 0")
        require(finite(self.beta1) and 0 <= self.beta1 < 1, "beta1", "a number in [0, 1)")
        require(self.niter >= 1, "niter", "at least 1 epoch")
        require(self.delr_freq >= 1, "delr_freq", "at least 1")
        require(self.workers >= 0, "workers", "0 or more")
        require(self.crop_size >= 2, "crop_size", "at least 2")
        require(  # the GenImage recipe tiles instead of resizing: no load_size
            self.recipe == genimage.RECIPE or self.load_size >= self.crop_size,
            "load_size",
            f"at least crop_size ({self.crop_size})",
        )
        require(0 <= self.blur_prob <= 1, "blur_prob", "a probability in [0, 1]")
        require(0 <= self.jpeg_prob <= 1, "jpeg_prob", "a probability in [0, 1]")
        require(0 <= self.blur_sigma[0] <= self.blur_sigma[1], "blur_sigma", "0 <= LOW <= HIGH")
        require(1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100, "jpeg_quality", "1 <= LOW <= HIGH <= 100")
        require(self.save_every >= 0, "save_every", "0 or more")
        require(self.max_pixels is None or self.max_pixels >= 1, "max_pixels", "at least 1")
        require(self.amp in AMP_DTYPES, "amp", f"one of {sorted(AMP_DTYPES)}")
        require(self.compile in COMPILE_CHOICES, "compile", f"one of {COMPILE_CHOICES}")
        require(self.npr in NPR_IMPLEMENTATIONS, "npr", f"one of {sorted(NPR_IMPLEMENTATIONS)}")
        require(len(self.npr_window) == 2 and min(self.npr_window) >= 1, "npr_window", "rows, columns >= 1")
        require(
            len(self.npr_anchor) == 2 and all(0 <= a < w for a, w in zip(self.npr_anchor, self.npr_window)),
            "npr_anchor",
            f"row, column inside the window {tuple(self.npr_window)}",
        )
        require(torch.device(self.device).type != "cuda" or torch.cuda.is_available(), "device", "a visible GPU")
        require(self.recipe in RECIPES, "recipe", f"one of {RECIPES}")
        tiles = self.recipe == genimage.RECIPE
        for name in ("blur_prob", "jpeg_prob"):  # the GenImage transform has no such step
            require(not tiles or getattr(self, name) == 0, name, f"0 with the {genimage.RECIPE} recipe")


class ConfigError(ValueError):
    """A TrainConfig setting that cannot work; `field` names it."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


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
                procs.barrier()
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
        self.steps_per_epoch = len(train_samples) // procs.world // self.per_process
        if self.steps_per_epoch == 0:
            raise ConfigError(
                "batch_size",
                f"{config.batch_size} is more than the {len(train_samples)} training images: no full batch",
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
        self.scaler.load_state_dict(resumed.scaler)
        self.epoch, self.samples_done, self.total_steps = resumed.epoch, resumed.samples_done, resumed.total_steps
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
        config = self.config
        if not val_samples or not self.procs.main:
            return None
        if config.recipe == genimage.RECIPE:
            protocol = genimage.validation_protocol(config.crop_size)
        else:
            protocol = Protocol(resize=True, crop=True, load_size=config.load_size, crop_size=config.crop_size)
        dataset = ImageDataset(val_samples, eval_transform(protocol), config.max_pixels)
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
            drop_last=True,
            pin_memory=self.device.type == "cuda",
        )

    def one_epoch(self, stop: StopRequests) -> dict:
        """Trains the rest of the epoch and returns its log record; on a stop request, writes the
        checkpoint and raises Interrupted."""
        config, procs = self.config, self.procs
        loader = self.epoch_loader()
        self.ddp_model.train()
        losses, images_seen, failures = [], 0, []  # images_seen: trained on, in this process
        start = time.perf_counter()
        progress = progress_bar(
            loader,
            desc=f"epoch {self.epoch + 1}/{config.niter}",
            unit="batch",
            disable=not procs.main or not config.progress,
            initial=self.samples_done // config.batch_size,
            total=self.samples_done // config.batch_size + len(loader),
        )
        stopping = False
        try:
            for batch in progress:
                failures += batch.failures
                for images, labels, _ in batch.groups:
                    losses.append(self.step(images, labels))
                    images_seen += images.shape[0]
                self.samples_done += config.batch_size
                self.total_steps += 1
                rate = images_seen * procs.world / max(time.perf_counter() - start, 1e-9)
                progress.set_postfix(loss=f"{losses[-1]:.4f}" if losses else "-", img_s=f"{rate:.1f}")
                if config.save_every and self.total_steps % config.save_every == 0:
                    self.checkpoint()
                if stop.requested():
                    stopping = True
                    break
        except RuntimeError:  # a Ctrl-C also stops the data workers, and the next fetch fails
            if stop.signum is None:
                raise
            stopping = True
        finally:
            progress.close()
        if stopping:
            self.checkpoint()
            raise Interrupted(stop.signum, self.epoch, self.samples_done // config.batch_size, self.checkpoint_path)
        return self.epoch_record(losses, images_seen, failures, time.perf_counter() - start)

    def step(self, images, labels) -> float:
        images = images.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        labels = labels.to(self.device, non_blocking=True)
        if self.compiled:
            torch._dynamo.maybe_mark_dynamic(images, 0)  # a batch short of a broken file: no recompile
        return train_step(self.step_model, self.optimizer, images, labels, self.scaler, self.amp_dtype)

    def epoch_record(self, losses, images_seen, failures, seconds) -> dict:
        """The learning rate decayed on the official schedule, and the epoch's log record."""
        world = self.procs.world
        if self.epoch % self.config.delr_freq == 0 and self.epoch != 0:  # the official schedule: at the epoch's end
            for group in self.optimizer.param_groups:
                group["lr"] = decayed_lr(group["lr"])
        record = {
            "epoch": self.epoch + 1,
            "lr": self.optimizer.param_groups[0]["lr"],
            "steps": self.total_steps,
            "images": images_seen * world,  # trained on in this epoch (since a resume)
            "train_loss": self.procs.mean(float(np.mean(losses)) if losses else math.nan),
            "images_per_s": images_seen * world / seconds if seconds else math.nan,
            "skipped_images": [f.path for f in failures],
        }
        return record

    def validate(self, record: dict):
        """Accuracy and AP on the validation images, into `record` (main process only)."""
        if self.val_loader is None:
            return
        detector = fast_detector(self.model, self.device, SpeedOptions(compile="off"))
        val = predict(detector, self.val_loader, desc="validate", progress=self.config.progress)
        metrics = binary_metrics(val.labels, val.probs)
        record.update(val_acc=metrics["acc"], val_ap=metrics["ap"])

    def end_epoch(self, record: dict):
        """The epoch counted done, its checkpoint written and its record logged."""
        if self.device.type == "cuda":
            record["peak_memory_mib"] = torch.cuda.max_memory_allocated(self.device) / 2**20
        self.epoch, self.samples_done = self.epoch + 1, 0
        self.checkpoint()
        self.log(record)

    def checkpoint(self):
        """The training state, written atomically by the main process."""
        if not self.procs.main:
            return
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
        save_training_state(self.checkpoint_path, state)

    def log(self, record: dict):
        if not self.procs.main:
            return
        with open(os.path.join(self.config.output, "log.jsonl"), "a") as log:
            log.write(json.dumps(record) + "\n")
        if self.config.progress:
            summary = ", ".join(f"{k} {v:.4g}" for k, v in record.items() if isinstance(v, float))
            print(f"epoch {self.epoch}: {summary}", file=sys.stderr)
