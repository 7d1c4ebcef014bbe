"""Feedback during an epoch. On a terminal tqdm's bar shows it; when stdout is a file or a pipe
(nohup, a job scheduler) the bar is off, so a line is printed every `progress_seconds` instead:

    epoch 3/80, iteration 40/100, loss 0.0412, 31.5 samples/s, ETA epoch 0:00:12, run 1:23:00

and TensorBoard gets the loss every `tensorboard_every` iterations (tag loss/iteration, step =
iterations since the run's start)."""
import datetime
import sys
import time
from typing import Callable, Optional


def clock_text(seconds: float) -> str:
    """Seconds as H:MM:SS (days as '2 days, 3:04:05')."""
    return str(datetime.timedelta(seconds=max(0, round(seconds))))


class StepReport:
    """The after_step hook of one epoch (training.loop.train_epoch): a progress line at most every
    `interval` seconds when `lines` is on, the per-iteration loss to `scalar` every `every`
    iterations (0: never). `run_elapsed` is the run's time before this epoch, `epochs_left` the
    epochs after it; the clock and the writer can be replaced (tests)."""

    def __init__(self, epoch: int, epoch_max: int, n_iter: int, batch: int, interval: float, every: int,
                 scalar: Optional[Callable[[str, float, int], None]], lines: bool, run_elapsed: float,
                 epochs_done: int, clock: Callable[[], float] = time.monotonic,
                 write: Callable[[str], None] = print):
        self.epoch, self.epoch_max, self.n_iter, self.batch = epoch, epoch_max, n_iter, batch
        self.interval, self.every, self.scalar, self.lines = interval, every, scalar, lines
        self.run_elapsed, self.epochs_done = run_elapsed, epochs_done
        self.clock, self.write = clock, write
        self.start = self.last = clock()

    def line(self, i: int, mean_loss: float, now: float) -> str:
        """The progress line after iteration i of n_iter."""
        spent = now - self.start
        rate = i * self.batch / spent if spent > 0 else float('inf')
        epoch_left = spent / i * (self.n_iter - i)
        # This run's seconds per epoch so far (whole epochs done here, plus this one's share).
        per_epoch = (self.run_elapsed + spent) / (self.epochs_done + i / self.n_iter)
        run_left = epoch_left + per_epoch * (self.epoch_max - self.epoch)
        return (f'epoch {self.epoch}/{self.epoch_max}, iteration {i}/{self.n_iter}, loss {mean_loss:.4f}, '
                f'{rate:.1f} samples/s, ETA epoch {clock_text(epoch_left)}, run {clock_text(run_left)}')

    def __call__(self, i: int, loss: float, mean_loss: float) -> None:
        if self.scalar is not None and self.every and i % self.every == 0:
            self.scalar('loss/iteration', loss, (self.epoch - 1) * self.n_iter + i)
        if self.lines and i < self.n_iter:
            now = self.clock()
            if now - self.last >= self.interval:
                self.last = now
                self.write(self.line(i, mean_loss, now))


def progress_lines(show: bool) -> bool:
    """Print progress lines: on rank 0, when stdout is not a terminal (tqdm's bar is off there)."""
    return show and not sys.stdout.isatty()
