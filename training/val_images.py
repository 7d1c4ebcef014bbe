"""A few validation images for TensorBoard after each validation (config `val_images`, default 2):
for the first images of the (first) validation set, a centre crop shown as bicubic | model |
ground truth, side by side. Deterministic (a centre crop, no random draw), so the panels of two
epochs show the same pixels; rendered as demo.py renders (inference.render), without gradients."""
import math
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor
from torch.utils.data import Dataset

from datasets.image_store import to_uint8
from datasets.resize import resize_fn
from inference.evaluate import bicubic_upsample
from inference.norm import DataNorm
from inference.render import render
from inference.window import model_window

CROP = 96  # HR side of the crop shown (at most)
GAP = 2  # white columns between panels


def _pairs(val_set: Dataset, count: int) -> list[tuple[Tensor, Tensor]]:
    """(LR (3, h, w), HR (3, H, W)) centre crops of the first `count` images behind a wrapped
    validation set: downsampled at the wrapper's largest scale with its resize, or the pairs a
    paired set holds. Empty when the wrapper is of another kind."""
    inner = getattr(val_set, 'dataset', None)
    if inner is None:
        return []
    out = []
    for i in range(min(count, len(inner))):
        item = inner[i]
        if isinstance(item, (tuple, list)):  # paired folders: LR, HR
            lr, hr = item
            s = hr.shape[-2] // lr.shape[-2]
            side = max(1, min(lr.shape[-2], lr.shape[-1], CROP // max(s, 1)))
            top, left = (lr.shape[-2] - side) // 2, (lr.shape[-1] - side) // 2
            out.append((lr[:, top:top + side, left:left + side],
                        hr[:, s * top:s * (top + side), s * left:s * (left + side)]))
        elif hasattr(val_set, 'scale_max'):
            s = val_set.scale_max
            side_hr = min(item.shape[-2], item.shape[-1], CROP)
            side_lr = max(1, math.floor(side_hr / s + 1e-9))
            side_hr = round(side_lr * s)
            top, left = (item.shape[-2] - side_hr) // 2, (item.shape[-1] - side_hr) // 2
            hr = item[:, top:top + side_hr, left:left + side_hr]
            out.append((resize_fn(hr, (side_lr, side_lr), getattr(val_set, 'resize', 'pil')), hr))
    return out


@torch.no_grad()
def val_panels(model: nn.Module, val_set: Dataset, norm: DataNorm, count: int, device: torch.device,
               precision: str, attention_rows: Optional[int] = None) -> list[np.ndarray]:
    """uint8 (H, 3W + 2 GAP, 3) strips, bicubic | model | ground truth, one per image (SRNO and HIIF
    attending as validation does, attention_rows); the model is left in the mode it was in."""
    if count < 1:
        return []
    was_training = model.training
    model.eval()
    strips = []
    try:
        for lr, hr in _pairs(val_set, count):
            size = hr.shape[-2:]
            bicubic = to_uint8(bicubic_upsample(lr.unsqueeze(0), size)[0])
            pred = render(model, lr.unsqueeze(0).to(device), size, norm, precision=precision,
                          window=model_window(model), attention_rows=attention_rows)
            gap = np.full((size[0], GAP, 3), 255, np.uint8)
            strips.append(np.concatenate([bicubic, gap, pred, gap, to_uint8(hr)], axis=1))
    finally:
        model.train(was_training)
    return strips


def panel_count(config: dict, has_val: bool) -> Optional[int]:
    """How many images to show per validation (None: none)."""
    return config['val_images'] if has_val and config['val_images'] > 0 else None
