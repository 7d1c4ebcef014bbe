"""One training epoch and one validation pass (the inner loops of train_liif.py)."""
import hashlib
import math
from typing import Iterable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from .errors import UserError
from .metrics import parse_eval_type, psnr
from .precision import autocast
from .render import batched_predict
from .trainer_data import DataNorm
from .trainer_dist import all_mean, all_sum


def to_device(batch: dict, device: torch.device) -> dict:
    """Every tensor of a batch on device."""
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def train_step(net: nn.Module, batch: dict, norm: DataNorm, optimizer: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler, device: torch.device, precision: str) -> Tensor:
    """One step of L1 loss in normalised units; returns the loss averaged over ranks (a scalar,
    the same on every rank). A non-finite loss raises FloatingPointError before any update."""
    inp = norm.inp(batch['inp'])  # (B, 3, h, w)
    gt = norm.gt(batch['gt'])  # (B, Q, 3)
    with autocast(device, precision):
        pred = net(inp, batch['coord'], batch['cell'])  # (B, Q, 3)
    loss = F.l1_loss(pred.float(), gt)
    mean = all_mean(loss.detach())
    if not torch.isfinite(mean):
        raise FloatingPointError(f'non-finite loss ({mean.item()})')
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return mean


def train_epoch(net: nn.Module, loader: Iterable, norm: DataNorm, optimizer: torch.optim.Optimizer,
                scaler: torch.amp.GradScaler, device: torch.device, precision: str, show: bool,
                desc: str) -> float:
    """One pass over loader; returns the mean of the iterations' losses."""
    net.train()
    total, n = 0.0, 0
    bar = tqdm(loader, leave=False, desc=desc, disable=None if show else True)
    for i, batch in enumerate(bar):
        try:
            loss = train_step(net, to_device(batch, device), norm, optimizer, scaler, device, precision)
        except FloatingPointError as e:
            raise FloatingPointError(f'{e} at iteration {i + 1}') from None
        total, n = total + loss.item(), n + 1
        bar.set_postfix(loss=f'{total / n:.4f}', refresh=False)
    return total / max(n, 1)


def as_images(values: Tensor, inp: Tensor, whole: bool, eval_type: Optional[str]) -> Tensor:
    """Query values (B, Q, 3) -> images for the metrics: (B, 3, 1, Q) when every pixel counts
    alike, else (B, 3, H, W) with H = round(h s), W = round(w s), s = sqrt(Q / (h w)) for an
    LR input (B, 3, h, w) -- which needs the val wrapper to return whole images (no sample_q)."""
    b, q, _ = values.shape
    if not whole:
        return values.permute(0, 2, 1).unsqueeze(2)  # (B, 3, 1, Q)
    h, w = inp.shape[-2:]
    s = math.sqrt(q / (h * w))
    hh, ww = round(h * s), round(w * s)
    if hh * ww != q:
        raise UserError(f'eval_type {eval_type} crops a border, so validation needs whole images: '
                        f'remove sample_q from val_dataset ({q} queries for a {h}x{w} input)')
    return values.view(b, hh, ww, 3).permute(0, 3, 1, 2)  # (B, 3, H, W)


@torch.no_grad()
def validate(model: nn.Module, loader: Iterable, norm: DataNorm, eval_type: Optional[str],
             eval_bsize: Optional[int], device: torch.device, precision: str, show: bool) -> float:
    """Mean PSNR (utils.metrics, per image) over this rank's shard, summed over ranks; the
    unwrapped model is queried eval_bsize coords at a time (all at once when None)."""
    whole = parse_eval_type(eval_type).kind != 'none'
    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=device)  # (sum of PSNRs, images)
    for batch in tqdm(loader, leave=False, desc='val', disable=None if show else True):
        batch = to_device(batch, device)
        inp = norm.inp(batch['inp'])
        with autocast(device, precision):
            if eval_bsize is None:
                pred = model(inp, batch['coord'], batch['cell'])
            else:
                pred = batched_predict(model, inp, batch['coord'], batch['cell'], eval_bsize)
        rgb = norm.pred_to_rgb(pred.float())  # (B, Q, 3)
        values = psnr(as_images(rgb, inp, whole, eval_type), as_images(batch['gt'], inp, whole, eval_type),
                      eval_type)  # (B,)
        total += torch.stack([values.sum(), values.new_tensor(values.numel())]).to(total)
    model.train()
    total = all_sum(total)
    return (total[0] / total[1]).item() if total[1] > 0 else float('nan')


def weights_digest(model: nn.Module) -> str:
    """sha256 of every parameter and buffer's bytes: equal on all ranks after DDP training."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
