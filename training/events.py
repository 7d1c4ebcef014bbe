"""TensorBoard scalars (loss, lr, validation PSNR) and validation images, written synchronously in tensorboardX's event
file format. tensorboardX's SummaryWriter writes from a background thread and again from an atexit
hook, so a full disk or a read-only folder surfaced there as tracebacks of their own (and a
stalled queue); here a failed write is an OSError in the training loop, where it becomes one line."""
import time
from pathlib import Path

from tensorboardX.event_file_writer import EventsWriter
from tensorboardX.proto.event_pb2 import Event, SessionLog
from tensorboardX.summary import image, scalar


class ScalarEvents:
    """Scalars of one run in `folder`/events.out.tfevents.<time>.<host>. `purge_step`: TensorBoard
    hides the events of earlier files from that step on (a resumed run redoes those epochs)."""

    def __init__(self, folder: Path, purge_step: int):
        folder.mkdir(exist_ok=True)
        self.writer = EventsWriter(str(folder / 'events'))  # opens the file, writes the version event
        self.path = Path(getattr(self.writer, '_file_name', folder))  # for messages
        self.writer.write_event(Event(step=purge_step, wall_time=time.time(), file_version='brain.Event:2'))
        self.writer.write_event(Event(step=purge_step, wall_time=time.time(),
                                      session_log=SessionLog(status=SessionLog.START)))
        self.writer.flush()

    def add(self, tag: str, value: float, step: int) -> None:
        """One scalar at `step`, flushed to disk with the epoch's other scalars by flush()."""
        self.writer.write_event(Event(summary=scalar(tag, value), step=step, wall_time=time.time()))

    def add_image(self, tag: str, img, step: int) -> None:
        """A uint8 (H, W, 3) image at `step` (written to disk by flush())."""
        self.writer.write_event(Event(summary=image(tag, img, dataformats='HWC'), step=step, wall_time=time.time()))

    def flush(self) -> None:
        """Write what was added to disk (an OSError if the disk refuses)."""
        self.writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        self.writer.close()
