"""One training epoch and one validation pass (the inner loops of train_liif.py)."""
import hashlib
from typing import Callable, Iterable, Optional

import torch
import torch.nn as nn
from torch import Tensor
from tqdm import tqdm

from inference.evaluate import evaluate
from inference.norm import DataNorm
from inference.window import model_window
from utils.errors import CheckedLoader
from utils.precision import autocast

from .distributed import all_mean, all_sum
from .losses import LossFn, make_loss


def to_device(batch: dict, device: torch.device) -> dict:
    """Every tensor of a batch on device."""
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def train_step(net: nn.Module, batch: dict, norm: DataNorm, optimizer: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler, device: torch.device, precision: str,
               grad_clip: Optional[float] = None, loss_fn: Optional[LossFn] = None) -> Tensor:
    """One step of `loss_fn` (default L1, training/losses.py) in normalised units; returns the loss
    averaged over ranks (a scalar, the same on every rank). A non-finite loss raises
    FloatingPointError before any update. With grad_clip, the gradients' global L2 norm is clipped
    to it (after unscaling fp16's)."""
    inp = norm.inp(batch['inp'])  # (B, 3, h, w)
    gt = norm.gt(batch['gt'])  # (B, Q, 3)
    with autocast(device, precision):
        pred = net(inp, batch['coord'], batch['cell'])  # (B, Q, 3)
    loss = (loss_fn or make_loss(None))(pred.float(), gt, batch)
    mean = all_mean(loss.detach())
    if not torch.isfinite(mean):
        raise FloatingPointError(f'non-finite loss ({mean.item()})')
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if grad_clip is not None:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return mean


def train_epoch(net: nn.Module, loader: Iterable, norm: DataNorm, optimizer: torch.optim.Optimizer,
                scaler: torch.amp.GradScaler, device: torch.device, precision: str, show: bool,
                desc: str, grad_clip: Optional[float] = None, loss_fn: Optional[LossFn] = None,
                after_step: Optional[Callable[[int, float, float], None]] = None) -> float:
    """One pass over loader; returns the mean of the iterations' losses. after_step(iteration
    (1-based), this step's loss, the epoch's mean loss so far) runs after every update (EMA,
    progress lines, TensorBoard)."""
    net.train()
    total, n = 0.0, 0
    bar = tqdm(CheckedLoader(loader, 'train_dataset'), leave=False, desc=desc, disable=None if show else True)
    for i, batch in enumerate(bar):
        try:
            loss = train_step(net, to_device(batch, device), norm, optimizer, scaler, device, precision,
                              grad_clip, loss_fn)
        except FloatingPointError as e:
            raise FloatingPointError(f'{e} at iteration {i + 1}') from None
        value = loss.item()
        total, n = total + value, n + 1
        bar.set_postfix(loss=f'{total / n:.4f}', refresh=False)
        if after_step is not None:
            after_step(n, value, total / n)
    return total / max(n, 1)


@torch.no_grad()
def validate(model: nn.Module, loader: Iterable, norm: DataNorm, eval_type: Optional[str],
             eval_bsize: Optional[int], device: torch.device, precision: str, show: bool,
             attention_rows: Optional[int] = None) -> float:
    """Mean PSNR over the validation set: inference.evaluate (the computation test.py reports) on
    this rank's shard, summed over ranks; the unwrapped model is queried eval_bsize coords at a
    time (all at once when None), in eval mode, window-padded as test.py does it by default, SRNO
    and HIIF attending over blocks of attention_rows rows (None: whole images; inference/groups.py)."""
    model.eval()
    try:
        rows = evaluate(model, loader, norm, eval_type, eval_bsize, device, precision,
                        progress=None if show else False, desc='val', with_ssim=False, key='val_dataset',
                        window=model_window(model), attention_rows=attention_rows)
    finally:
        model.train()
    total = all_sum(torch.tensor([sum(r['psnr'] for r in rows), len(rows)], dtype=torch.float64, device=device))
    return (total[0] / total[1]).item() if total[1] > 0 else float('nan')


def weights_digest(model: nn.Module) -> str:
    """sha256 of every parameter and buffer's bytes: equal on all ranks after DDP training."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
