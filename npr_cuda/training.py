"""Training the NPR detector with the official recipe, on one or several processes.

Recipe (official train.py and README): Adam (lr 2e-4, betas 0.9/0.999), global batch 32,
BCEWithLogitsLoss, 50 epochs; at the end of epoch e (counted from 0), if e % 10 == 0 and e != 0,
lr *= 0.9, never below 1e-6. Train transform: Resize 256x256 -> [blur, JPEG: off by default] ->
RandomCrop 224 -> RandomHorizontalFlip -> ToTensor -> ImageNet Normalize. Validation (accuracy,
AP) after every epoch with Resize 256 + CenterCrop 224.

Reproducible and resumable by construction: the order of an epoch is a permutation drawn from
(seed, epoch), and each sample's random crop, flip, blur and JPEG quality from (seed, epoch,
index), so neither the number of data workers nor an interruption changes what the model sees.
A checkpoint ({'model': state_dict, 'optimizer', 'epoch', 'step', ...}) is written atomically
after every epoch, every --save-every steps, and on Ctrl-C or SIGTERM; --resume continues from
it at the exact step.
"""

import io
import json
import math
import os
import signal
import sys
import time
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from PIL import Image, ImageFilter
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler, Sampler
from torchvision.transforms import functional as TF
from tqdm import tqdm

from .data import IMAGENET_MEAN, IMAGENET_STD, ImageDataset, Protocol, eval_transform, make_loader
from .detector import npr_resnet50, read_state_dict
from .metrics import binary_metrics
from .predict import predict

LR_DECAY = 0.9
MIN_LR = 1e-6


# ------------------------------------------------------------------------------------- data
class TrainTransform:
    """The official train transform, with every random choice drawn from a given generator."""

    def __init__(self, load_size=256, crop_size=224, flip=True, blur_prob=0.0, blur_sigma=(0.0, 3.0),
                 jpeg_prob=0.0, jpeg_quality=(30, 100)):
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

    def __init__(self, samples: Sequence[Tuple[str, int]], transform: TrainTransform, seed: int):
        super().__init__(samples, transform)
        self.seed, self.epoch = seed, 0

    def transform_image(self, image: Image.Image, index: int) -> torch.Tensor:
        return self.transform(image, sample_generator(self.seed, self.epoch, index))


class SkipFirst(Sampler):
    """The indices of `sampler` after the first `skip` (to resume inside an epoch)."""

    def __init__(self, sampler: Sampler, skip: int):
        self.sampler, self.skip = sampler, skip

    def __iter__(self):
        return iter(list(self.sampler)[self.skip:])

    def __len__(self):
        return max(0, len(self.sampler) - self.skip)


# ------------------------------------------------------------------------------ checkpoints
def save_atomically(obj, path: str) -> None:
    """torch.save to a temporary file in the same folder, flushed to disk, then renamed over
    `path`: an interruption leaves either the old file or the new one, never half of one."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


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

    def __init__(self, device_name: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device_name == "auto":
            device_name = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device_name)
        if self.device.type == "cuda":
            if not torch.cuda.is_available():
                sys.exit(f"npr-train: --device {device_name}: no CUDA GPU is visible")
            if self.world > 1:
                self.device = torch.device("cuda", local_rank)
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
        self.procs, self.reason, self.previous = procs, None, {}

    def __enter__(self):
        for signum in (signal.SIGINT, signal.SIGTERM):
            self.previous[signum] = signal.signal(signum, self.handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def handle(self, signum, frame):
        self.reason = signal.Signals(signum).name
        signal.signal(signum, self.previous[signum])
        if self.procs.main:
            print(f"\nnpr-train: {self.reason}: stopping after this step ({self.reason} again to abort now)", file=sys.stderr)

    def requested(self) -> bool:
        if self.procs.world == 1:
            return self.reason is not None
        flag = torch.tensor([self.reason is not None], dtype=torch.int32, device=self.procs.device)
        dist.all_reduce(flag)
        return bool(flag.item())


# ------------------------------------------------------------------------------------ train
def train(args, train_samples: List[Tuple[str, int]], val_samples: Optional[List[Tuple[str, int]]]) -> dict:
    """Runs the recipe; returns the last epoch's log record. `args` as npr_cuda.cli.train."""
    procs = Processes(args.device)
    if args.batch_size % procs.world:
        sys.exit(f"npr-train: --batch-size {args.batch_size} must be divisible by the {procs.world} processes")
    device = procs.device
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    torch.manual_seed(args.seed)  # the initial weights
    model = npr_resnet50(npr_impl=args.npr_impl).to(device, memory_format=memory_format)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(args.beta1, 0.999))
    amp_dtype = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.amp]
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype is torch.float16)
    checkpoint_path = os.path.join(args.output, "last.pth")
    epoch, step_in_epoch, total_steps = 0, 0, 0
    if args.resume:
        state = torch.load(args.resume, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or "optimizer" not in state or "epoch" not in state:
            sys.exit(f"npr-train: --resume {args.resume}: not an npr-train checkpoint (needs model, optimizer, epoch)")
        model.load_state_dict(read_state_dict(args.resume))
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state.get("scaler", {}))
        epoch, step_in_epoch, total_steps = state["epoch"], state.get("step", 0), state.get("total_steps", 0)
    ddp_model = DistributedDataParallel(model) if procs.world > 1 else model

    dataset = TrainDataset(train_samples, TrainTransform(
        load_size=args.load_size, crop_size=args.crop_size, flip=not args.no_flip, blur_prob=args.blur_prob, blur_sigma=args.blur_sigma,
        jpeg_prob=args.jpeg_prob, jpeg_quality=args.jpeg_quality), args.seed)
    sampler = DistributedSampler(dataset, num_replicas=procs.world, rank=procs.rank, shuffle=True,
                                 seed=args.seed, drop_last=True)
    per_process = args.batch_size // procs.world
    val_loader = None
    if val_samples and procs.main:
        val_protocol = Protocol(resize=True, crop=True, load_size=args.load_size, crop_size=args.crop_size)
        val_loader = make_loader(ImageDataset(val_samples, eval_transform(val_protocol)), args.batch_size,
                                 args.workers, pin_memory=device.type == "cuda")

    def checkpoint(epoch_done, step):
        if procs.main:
            save_atomically({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                             "epoch": epoch_done, "step": step, "total_steps": total_steps,
                             "args": {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool, list, tuple, type(None)))}},
                            checkpoint_path)

    record = {}
    with StopRequests(procs) as stop:
        while epoch < args.niter:
            dataset.epoch = epoch
            sampler.set_epoch(epoch)
            loader = make_loader(dataset, per_process, args.workers, sampler=SkipFirst(sampler, step_in_epoch * per_process),
                                 drop_last=True, pin_memory=device.type == "cuda")
            ddp_model.train()
            losses, images_seen, failures = [], 0, []
            start = time.perf_counter()
            progress = tqdm(loader, desc=f"epoch {epoch + 1}/{args.niter}", unit="batch", disable=not procs.main or args.quiet,
                            initial=step_in_epoch, total=step_in_epoch + len(loader))
            stopping = False
            try:
                for batch in progress:
                    failures += batch.failures
                    for images, labels, _ in batch.groups:
                        images = images.to(device, non_blocking=True).contiguous(memory_format=memory_format)
                        labels = labels.to(device, non_blocking=True)
                        losses.append(train_step(ddp_model, optimizer, images, labels, scaler, amp_dtype))
                        images_seen += images.shape[0]
                    step_in_epoch += 1
                    total_steps += 1
                    rate = images_seen * procs.world / max(time.perf_counter() - start, 1e-9)
                    progress.set_postfix(loss=f"{losses[-1]:.4f}" if losses else "-", img_s=f"{rate:.1f}")
                    if args.save_every and total_steps % args.save_every == 0:
                        checkpoint(epoch, step_in_epoch)
                    if stop.requested():
                        stopping = True
                        break
            except RuntimeError:  # a Ctrl-C also stops the data workers, and the next fetch fails
                if stop.reason is None:
                    raise
                stopping = True
            finally:
                progress.close()
            if stopping:
                checkpoint(epoch, step_in_epoch)
                if procs.main:
                    print(f"npr-train: stopped at epoch {epoch + 1}, step {step_in_epoch}; "
                          f"resume with --resume {checkpoint_path}", file=sys.stderr)
                procs.close()
                raise SystemExit(130)
            seconds = time.perf_counter() - start
            if epoch % args.delr_freq == 0 and epoch != 0:  # the official schedule: at the end of the epoch
                for group in optimizer.param_groups:
                    group["lr"] = decayed_lr(group["lr"])
            record = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], "steps": total_steps,
                      "train_loss": procs.mean(float(np.mean(losses)) if losses else math.nan),
                      "images_per_s": images_seen * procs.world / seconds if seconds else math.nan,
                      "skipped_images": [f.path for f in failures]}
            if val_loader is not None:
                val = predict(model, val_loader, device, desc="validate", progress=not args.quiet)
                metrics = binary_metrics(val.labels, val.probs)
                record.update(val_acc=metrics["acc"], val_ap=metrics["ap"])
            if device.type == "cuda":
                record["peak_memory_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
            epoch, step_in_epoch = epoch + 1, 0
            checkpoint(epoch, 0)
            if procs.main:
                with open(os.path.join(args.output, "log.jsonl"), "a") as log:
                    log.write(json.dumps(record) + "\n")
                if not args.quiet:
                    summary = ", ".join(f"{k} {v:.4g}" for k, v in record.items() if isinstance(v, float))
                    print(f"epoch {epoch}: {summary}", file=sys.stderr)
            procs.barrier()
    procs.close()
    return record
