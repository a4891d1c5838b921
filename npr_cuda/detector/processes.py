"""The processes of a training run (one, or those torchrun started) and how they stay in step.

Under several processes every collective must be called by every process, in the same order:
one that skips a step (its batch held only broken files) or stops alone would pair its next
collective with the others' gradient all-reduce, and every process would wait for good. So each
step starts with one all-reduce, :meth:`Processes.sums`, of what every process needs to decide
the same thing: how many images the step has over all processes (none: every process skips
it; some: every process runs it, one without images with an empty batch, so that it still joins
the gradient all-reduce), how many were skipped, and whether any process was asked to stop.
"""

import os
import signal
import sys
from typing import List, Sequence

import torch
import torch.distributed as dist


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

    def sums(self, values: Sequence[float]) -> List[float]:
        """The element-wise sums of ``values`` over the processes, in one all-reduce (float64:
        counts stay exact). Every process calls it at the same points, whatever it holds."""
        if self.world == 1:
            return [float(v) for v in values]
        tensor = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def gather(self, items: Sequence) -> list:
        """Every process's ``items``, concatenated in rank order (a collective)."""
        if self.world == 1:
            return list(items)
        gathered = [None] * self.world
        dist.all_gather_object(gathered, list(items))
        return [item for part in gathered for item in part]

    def main_says(self, value):
        """The main process's ``value``, in every process (a collective): how the others learn
        the outcome of what only the main process does, such as writing the checkpoint."""
        if self.world == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def take_main_buffers(self, module: torch.nn.Module):
        """``module``'s buffers set to the main process's (a collective). Under DDP each process
        keeps batch-norm running statistics of its own batches since DDP last broadcast them,
        at the start of the step; the checkpoint holds the main process's."""
        if self.world > 1:
            for buffer in module.buffers():
                dist.broadcast(buffer, src=0)

    def close(self):
        if self.world > 1:
            dist.destroy_process_group()


class StopRequests:
    """Turns the first Ctrl-C (SIGINT) or SIGTERM into a request to stop before the next step,
    so that the checkpoint then written holds a consistent state; a second one acts at once.
    Under several processes the request is one of the values each step's all-reduce sums, so
    that every process stops at the same step, whichever was asked (torchrun passes a SIGTERM on
    to every worker; a process blocked in a collective could not act on it)."""

    def __init__(self, procs: Processes):
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

    def asked(self) -> List[int]:
        """[Ctrl-C, SIGTERM]: 1 where this process was asked, to be summed over the processes
        (a snapshot: a signal that arrives later counts at the next step)."""
        return [int(self.signum == signal.SIGINT), int(self.signum == signal.SIGTERM)]

    def settle(self, asked_anywhere: Sequence[float]) -> bool:
        """Whether to stop now, from :meth:`asked` summed over the processes: the same answer in
        every process. One stopped by the others takes their signal (Ctrl-C first)."""
        if not any(asked_anywhere):
            return False
        if self.signum is None:
            self.signum = signal.SIGINT if asked_anywhere[0] else signal.SIGTERM
        return True
