"""The one evaluation: a model (or plain bicubic) over a loader of SR samples -> per-image PSNR and
SSIM under a protocol (docs/design.md §5). test.py reports it; training's validation averages its
PSNR column, so the number printed during training and the one test.py prints are one computation.

A sample is a wrapper item {'inp' (B, 3, h, w), 'coord' (B, Q, 2), 'cell' (B, Q, 2), 'gt' (B, Q, 3)}.
When its Q queries are every pixel of the H x W ground truth (cell = (2 / H, 2 / W)), predictions
and ground truth are compared as (B, 3, H, W) images. When they are a random subset (`sample_q`,
as the paper's validation crops are), they are compared as (B, 3, 1, Q) strips: PSNR over the
sampled pixels, which only a protocol without a border crop allows; SSIM then is None.
"""
import statistics
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional, Sequence

import torch
import torch.nn as nn
from PIL import Image
from torch import Tensor
from tqdm import tqdm

from datasets.image_store import to_uint8
from datasets.resize import resize_fn
from utils.errors import CheckedLoader, UserError
from utils.files import refuse_inputs, unique_stems
from utils.images import write_image
from utils.precision import autocast

from .groups import couples_queries
from .metrics import Protocol, parse_eval_type, psnr, ssim
from .norm import DataNorm
from .render import (band_coord, batched_predict, count_non_finite, frame_cell, non_finite_error,
                     resolve_cell_scale_max)
from .window import cell_clip, mirror_pad, padded_grid, window_frame


def grid_size(cell: Tensor) -> tuple[int, int]:
    """(H, W) of the output grid behind a sample: cell = (2 / H, 2 / W) for every query."""
    return round(2 / cell[0, 0, 0].item()), round(2 / cell[0, 0, 1].item())


def as_images(values: Tensor, hw: Optional[Sequence[int]]) -> Tensor:
    """Query values (B, Q, 3) in row-major pixel order -> (B, 3, H, W) for hw = (H, W), or the
    strip (B, 3, 1, Q) when hw is None (a random subset of pixels)."""
    b, q, _ = values.shape
    if hw is None:
        return values.permute(0, 2, 1).unsqueeze(2)  # (B, 3, 1, Q)
    return values.view(b, hw[0], hw[1], 3).permute(0, 3, 1, 2)  # (B, 3, H, W)


def image_shape(cell: Tensor, n_query: int, protocol: Protocol,
                whole: bool = False) -> Optional[tuple[int, int]]:
    """(H, W) when the n_query queries are the whole output grid, None for a pixel subset (allowed
    only when the protocol keeps every pixel and `whole` is not demanded)."""
    h, w = grid_size(cell)
    if h * w == n_query:
        return h, w
    if protocol.crop or whole:
        why = f'eval_type {protocol.eval_type} crops a border' if protocol.crop else 'SSIM is computed'
        raise UserError(f'{why}, so evaluation needs whole images, but the wrapper gave {n_query} '
                        f'queries for a {h}x{w} image: remove sample_q from the dataset wrapper')
    return None


def bicubic_upsample(inp: Tensor, size: Sequence[int]) -> Tensor:
    """LR (B, 3, h, w) in [0, 1] -> (B, 3, H, W): PIL's bicubic on the 8-bit image, per image
    (the resize the data pipeline downsamples with)."""
    return torch.stack([resize_fn(x, tuple(size), 'pil') for x in inp])


def predict(model: Optional[nn.Module], batch: dict, norm: DataNorm, hw: Optional[Sequence[int]],
            bsize: Optional[int], device: torch.device, precision: str, window: Optional[int] = None,
            cell_scale_max: Optional[float] = None, attention_rows: Optional[int] = None) -> tuple[Tensor, Tensor]:
    """One batch -> (pred, gt) in [0, 1], both (B, 3, H, W) for hw = (H, W), or both (B, 3, 1, Q)
    strips for hw None; model None means bicubic (whole images only). With `window`, whole images
    are rendered mirror-padded to the window (inference/window.py; strips are queried as given);
    with `cell_scale_max` (or, without it, the model's own: render.resolve_cell_scale_max), the
    cell clip for scales beyond it. A model whose queries attend to each other attends over
    blocks of `attention_rows` rows of a whole image (None: all of it; a strip is one group), over
    the padded grid under a window; one that renders whole grids (LMF with CMSR) gets the whole
    grid in one call, over the padded grid likewise (inference/groups.py)."""
    inp, coord, cell, gt = (batch[k].to(device) for k in ('inp', 'coord', 'cell', 'gt'))
    if model is None:
        if hw is None:
            raise UserError('the bicubic baseline needs whole images: remove sample_q from the dataset wrapper')
        return bicubic_upsample(inp, hw), as_images(gt, hw)
    x = norm.inp(inp)
    grid_hw, coupled = hw, couples_queries(model)
    if window and hw is not None:
        (pad_h, pad_w), frame = window_frame(inp.shape[-2:], window)
        x = mirror_pad(x, pad_h, pad_w)
        if coupled:  # the authors' padded grid: its queries take part in the attention
            grid_hw, frame = padded_grid(hw, inp.shape[-2:], window)
        coord = band_coord(grid_hw, 0, grid_hw[0], device, frame).unsqueeze(0).expand(inp.shape[0], -1, -1)  # (B, Q', 2)
        cell = frame_cell(grid_hw, coord, frame)
    clip = resolve_cell_scale_max(model, cell_scale_max)
    if clip is not None:
        cell = cell * cell_clip(grid_size(batch['cell'])[0] / inp.shape[-2], clip)
    group = attention_rows * grid_hw[1] if coupled and attention_rows and hw is not None else None
    with autocast(device, precision):
        pred = batched_predict(model, x, coord, cell, bsize or coord.shape[1], group)  # (B, Q', 3)
    if grid_hw != hw:
        pred = pred.view(pred.shape[0], *grid_hw, 3)[:, :hw[0], :hw[1]].reshape(pred.shape[0], -1, 3)  # (B, H*W, 3)
    bad = count_non_finite(pred)  # clamped, a NaN or inf would score as black or white
    if bad:
        raise non_finite_error(bad, pred.shape[0] * pred.shape[1], precision, 'no score is given')
    return as_images(norm.pred_to_rgb(pred.float()), hw), as_images(gt, hw)


@torch.no_grad()
def evaluate(model: Optional[nn.Module], loader: Iterable, norm: DataNorm, eval_type=None,
             bsize: Optional[int] = None, device: torch.device = torch.device('cpu'),
             precision: str = 'fp32', names: Optional[Sequence[str]] = None, progress: Optional[bool] = True,
             desc: str = 'test', whole: bool = False, with_ssim: bool = True, window: Optional[int] = None,
             cell_scale_max: Optional[float] = None, on_image: Optional[Callable[[int, Tensor], None]] = None,
             key: str = 'test_dataset', attention_rows: Optional[int] = None) -> list[dict]:
    """Per-image results [{'index', 'name', 'lr_size', 'hr_size', 'psnr', 'ssim'}] of `model`
    (None: bicubic) over `loader`, querying `bsize` coordinates at a time (all at once if None).
    'ssim' is None for pixel subsets (`whole` refuses them) and without `with_ssim` (training's
    validation, whose crops may be smaller than SSIM's window). `window`, `cell_scale_max` and
    `attention_rows`: see predict. `on_image(index, pred (3, H, W) in [0, 1])` sees each whole prediction.
    `progress` None: a bar only on a terminal. `key` names the config section in loader errors.
    The model's train/eval mode is the caller's business."""
    protocol = parse_eval_type(eval_type)
    rows = []
    bar = tqdm(CheckedLoader(loader, key), desc=desc, leave=False,
               disable=None if progress is None else not progress)
    for batch in bar:
        hw = image_shape(batch['cell'], batch['gt'].shape[1], protocol, whole)
        if whole and hw is not None and tuple(batch['inp'].shape[-2:]) == tuple(hw):
            first = names[len(rows)] if names else f'item {len(rows)}'
            raise UserError(f'{first}: the LR input is {hw[0]}x{hw[1]}, the size of its ground truth: nothing '
                            'to super-resolve (a scale too close to 1?)')
        try:
            pred, gt = predict(model, batch, norm, hw, bsize, device, precision, window, cell_scale_max,
                               attention_rows)
        except UserError as e:
            raise UserError(f'{names[len(rows)] if names else f"item {len(rows)}"}: {e}') from None
        lr_size = list(batch['inp'].shape[-2:])
        psnrs = psnr(pred, gt, protocol).tolist()
        ssims = ssim(pred, gt, protocol).tolist() if with_ssim and hw is not None else [None] * len(psnrs)
        for k, (p, s) in enumerate(zip(psnrs, ssims)):
            i = len(rows)
            if on_image is not None and hw is not None:
                on_image(i, pred[k])
            rows.append({'index': i, 'name': names[i] if names else str(i), 'lr_size': lr_size,
                         'hr_size': list(gt.shape[-2:]), 'psnr': p, 'ssim': s})
        bar.set_postfix(psnr=f"{statistics.fmean(r['psnr'] for r in rows):.4f}")
    return rows


class PredictionWriter:
    """`evaluate`'s on_image: each prediction as an 8-bit PNG (value * 255, rounded) in `folder`,
    named after its ground truth (`names`; `<index>` without), written atomically. Names are
    unique by utils.files.unique_stems: images sharing a stem (`a.png`, `a.tif`) are all
    `<stem>_<k>.png`, k = 1, 2, ... in dataset order."""

    def __init__(self, folder: Path, names: Optional[Sequence[str]], count: Optional[int] = None):
        self.folder = Path(folder)
        stems = [Path(n).stem for n in names] if names else [f'{i:04d}' for i in range(count or 0)]
        self.files = [f'{s}.png' for s in unique_stems(stems)]

    def __call__(self, index: int, pred: Tensor) -> None:
        name = self.files[index] if index < len(self.files) else f'{index:04d}.png'
        write_image(Image.fromarray(to_uint8(pred.float()), 'RGB'), self.folder / name, 'PNG')


def prepare_image_folder(folder: str, inputs: Mapping[str, Optional[str]]) -> Path:
    """--save-images: a new or empty folder that is none of the inputs, lies in no input folder
    and holds none (utils.files.refuse_inputs): nothing is overwritten."""
    path = Path(folder)
    refuse_inputs(path, inputs, '--save-images', folder=True)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UserError(f'--save-images {folder} exists and is not an empty folder; give a new one '
                        '(saved images never overwrite anything)')
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f'cannot create --save-images {folder} ({e.strerror})') from None
    return path
