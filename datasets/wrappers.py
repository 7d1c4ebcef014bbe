"""The SR wrappers (docs/design.md §3): turn images into {'inp', 'coord', 'cell', 'gt'} training samples.

Every item: 'inp' (3, h, w) LR in [0, 1]; 'coord' (Q, 2) HR pixel centres, (row, col);
'cell' (Q, 2) = (2 / H_hr, 2 / W_hr); 'gt' (Q, 3) HR RGB at coord. Q = H_hr * W_hr, or
`sample_q` pixels drawn without replacement. Random draws: scale, crop, flips and channel order
from Python's `random`; the sample_q subset from torch's generator (see datasets/seeding.py).

Augmentation: `augment` flips and transposes (the paper's); `rgb_permute` (off by default, not in
the paper) also shuffles the colour channels of LR and HR alike, one of the six orders per item
(the "RGB permute" of Yoo et al., CVPR 2020). It widens the colours a small training set shows:
a decoder that predicts absolute RGB otherwise renders colours it never saw with a cast.
"""
import math
import random
from typing import Optional

import torch
from torch import Tensor
from torch.utils.data import Dataset

from utils.coords import make_cell, to_pixel_samples
from utils.errors import UserError

from .registry import register
from .resize import check_resize_method, resize_fn

Flips = tuple[bool, bool, bool]


def random_flips() -> Flips:
    """Three independent fair coins: (flip rows, flip cols, transpose)."""
    return random.random() < 0.5, random.random() < 0.5, random.random() < 0.5


def augment(x: Tensor, flips: Flips) -> Tensor:
    """x (..., H, W) flipped along rows, then cols, then transposed, as `flips` says."""
    flip_rows, flip_cols, transpose = flips
    if flip_rows:
        x = x.flip(-2)
    if flip_cols:
        x = x.flip(-1)
    if transpose:
        x = x.transpose(-2, -1)
    return x


def random_channel_order() -> list[int]:
    """One of the six orders of the three colour channels, uniformly."""
    return random.sample(range(3), 3)


def augment_pair(crop_lr: Tensor, crop_hr: Tensor, flips: bool, rgb_permute: bool) -> tuple[Tensor, Tensor]:
    """The same random flips (if `flips`) and channel order (if `rgb_permute`) on LR and HR;
    draws nothing from `random` for a switch that is off."""
    if flips:
        f = random_flips()
        crop_lr, crop_hr = augment(crop_lr, f), augment(crop_hr, f)
    if rgb_permute:
        order = random_channel_order()
        crop_lr, crop_hr = crop_lr[order], crop_hr[order]
    return crop_lr, crop_hr


def make_sample(inp: Tensor, hr: Tensor, sample_q: Optional[int], what: str) -> dict:
    """LR inp (3, h, w) and HR (3, H, W) -> {'inp', 'coord' (Q, 2), 'cell' (Q, 2), 'gt' (Q, 3)}."""
    coord, gt = to_pixel_samples(hr.contiguous())  # (H*W, 2), (H*W, 3)
    if sample_q is not None:
        if sample_q > coord.shape[0]:
            raise UserError(f'sample_q {sample_q} exceeds the {hr.shape[-2]}x{hr.shape[-1]} = '
                            f'{coord.shape[0]} pixels of the HR image from {what}')
        keep = torch.randperm(coord.shape[0])[:sample_q]
        coord, gt = coord[keep], gt[keep]
    return {'inp': inp.contiguous(), 'coord': coord, 'cell': make_cell(hr.shape[-2:], coord), 'gt': gt}


def check_switch(value, name: str) -> bool:
    """Refuse a wrapper switch that is not a boolean (true or false in YAML)."""
    if not isinstance(value, bool):
        raise UserError(f'{name} must be true or false, got {value!r}')
    return value


def describe(dataset: Dataset, idx: int) -> str:
    """The file(s) behind item idx of `dataset`, if it can say, for error messages."""
    return dataset.describe(idx) if hasattr(dataset, 'describe') else f'item {idx}'


def sizes_differ(dataset: Dataset) -> Optional[str]:
    """'its images differ in size' when the headers say so (item_sizes), else None."""
    sizes = dataset.item_sizes() if hasattr(dataset, 'item_sizes') else []
    return 'its images differ in size' if len(set(sizes)) > 1 else None


def check_size(value: Optional[int], name: str) -> Optional[int]:
    """Refuse a size or count that is not a positive integer (None: not set)."""
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise UserError(f'{name} must be a positive integer, got {value!r}')
    return value


def check_sample_q(sample_q: Optional[int]) -> None:
    """Refuse a sample_q that is not a positive integer (None means every pixel)."""
    check_size(sample_q, 'sample_q')


def mod_crop(img: Tensor, multiple: Optional[int]) -> Tensor:
    """img (..., H, W) cropped at the top left to multiples of `multiple` (MATLAB's modcrop, which
    made MMEditing's GTmod12 benchmark images); unchanged for None."""
    if multiple is None:
        return img
    return img[..., :img.shape[-2] - img.shape[-2] % multiple, :img.shape[-1] - img.shape[-1] % multiple]


@register('sr-implicit-downsampled')
class SRImplicitDownsampled(Dataset):
    """HR images -> (LR, HR samples) at a random scale s ~ U(scale_min, scale_max) per item.
    With inp_size: a random square HR crop of side round(inp_size * s) resized to inp_size.
    Without: HR cropped at the top left to round(h_lr * s) x round(w_lr * s), h_lr = floor(H / s).
    With gt_mod, the HR image is first cropped to multiples of it (MMEditing's GTmod12: gt_mod 12)."""

    def __init__(self, dataset: Dataset, inp_size: Optional[int] = None, scale_min: float = 1,
                 scale_max: Optional[float] = None, augment: bool = False,
                 sample_q: Optional[int] = None, resize: str = 'pil', rgb_permute: bool = False,
                 gt_mod: Optional[int] = None):
        self.dataset, self.inp_size, self.sample_q = dataset, inp_size, sample_q
        self.augment = check_switch(augment, 'augment')
        self.rgb_permute = check_switch(rgb_permute, 'rgb_permute')
        self.gt_mod = check_size(gt_mod, 'gt_mod')
        check_size(inp_size, 'inp_size')
        self.scale_min = scale_min
        self.scale_max = scale_min if scale_max is None else scale_max
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                   for v in (self.scale_min, self.scale_max)):
            raise UserError(f'scale_min and scale_max must be finite numbers, got {self.scale_min!r} '
                            f'and {self.scale_max!r}')
        if not 0 < self.scale_min <= self.scale_max:
            raise UserError(f'need 0 < scale_min <= scale_max, got {self.scale_min} and {self.scale_max}')
        check_sample_q(sample_q)
        self.resize = check_resize_method(resize)

    def __len__(self) -> int:
        return len(self.dataset)

    def check_items(self) -> None:
        """Before training: every image is large enough for every scale this wrapper can draw
        (from the headers); a UserError naming the first that is not."""
        sizes = self.dataset.item_sizes() if hasattr(self.dataset, 'item_sizes') else []
        for i, (h, w) in enumerate(sizes):
            if self.gt_mod is not None:  # the size __getitem__ crops to
                h, w = h - h % self.gt_mod, w - w % self.gt_mod
            if self.inp_size is not None and min(h, w) < round(self.inp_size * self.scale_max):
                side = round(self.inp_size * self.scale_max)
                raise UserError(f'image {describe(self.dataset, i)} is {h}x{w}, smaller than the {side}x{side} HR crop '
                                f'for inp_size {self.inp_size} at scale_max {self.scale_max:g}')
            if self.inp_size is None and min(h, w) < self.scale_max:
                raise UserError(f'image {describe(self.dataset, i)} is {h}x{w}, too small to downsample by '
                                f'scale_max {self.scale_max:g}')

    def varying_sizes(self) -> Optional[str]:
        """Why two items can differ in size (so cannot share a batch), or None: without an
        inp_size crop, a random scale or images of different sizes."""
        if self.inp_size is not None:
            return None
        if self.scale_min != self.scale_max:
            return 'each item is downscaled by its own random scale'
        return sizes_differ(self.dataset)

    def __getitem__(self, idx: int) -> dict:
        img = mod_crop(self.dataset[idx], self.gt_mod)
        s = random.uniform(self.scale_min, self.scale_max)
        crop_hr, lr_size = self.crop(img, s, idx)
        crop_lr = self.make_lr(crop_hr, lr_size)
        crop_lr, crop_hr = augment_pair(crop_lr, crop_hr, self.augment, self.rgb_permute)
        return make_sample(crop_lr, crop_hr, self.sample_q, describe(self.dataset, idx))

    def crop(self, img: Tensor, s: float, idx: int) -> tuple[Tensor, tuple[int, int]]:
        """The HR crop of item idx at scale s, and the LR size (h, w) it is made into."""
        if self.inp_size is None:
            h_lr = math.floor(img.shape[-2] / s + 1e-9)
            w_lr = math.floor(img.shape[-1] / s + 1e-9)
            if h_lr < 1 or w_lr < 1:
                raise UserError(f'image {describe(self.dataset, idx)} is {img.shape[-2]}x{img.shape[-1]}, '
                                f'too small to downsample by {s:.3f}')
            return img[:, :round(h_lr * s), :round(w_lr * s)], (h_lr, w_lr)
        w_hr = round(self.inp_size * s)
        if img.shape[-2] < w_hr or img.shape[-1] < w_hr:
            raise UserError(f'image {describe(self.dataset, idx)} is {img.shape[-2]}x{img.shape[-1]}, '
                            f'smaller than the {w_hr}x{w_hr} HR crop for inp_size {self.inp_size} '
                            f'at scale {s:.3f} (crops reach {round(self.inp_size * self.scale_max)})')
        x0 = random.randint(0, img.shape[-2] - w_hr)
        y0 = random.randint(0, img.shape[-1] - w_hr)
        return img[:, x0:x0 + w_hr, y0:y0 + w_hr], (self.inp_size, self.inp_size)

    def make_lr(self, crop_hr: Tensor, lr_size: tuple[int, int]) -> Tensor:
        """The LR input (3, *lr_size) made from an HR crop: bicubic by `resize`."""
        return resize_fn(crop_hr, lr_size, self.resize)


def lr_extent(n_lr: int, n_hr: int, scale: float) -> Optional[int]:
    """LR pixels of an axis that an HR axis of n_hr pixels covers at `scale`, or None when n_lr
    is no LR size of n_hr at that scale. An LR made at scale s has floor(n_hr / s) pixels (HR
    cropped to a multiple first, as the benchmark packs are, or PIL with a floor) or ceil(n_hr /
    s) (MATLAB's imresize of the whole HR): both are accepted, and in the second case the last
    LR pixel, which reaches beyond the HR, is left out."""
    lo, hi = math.floor(n_hr / scale + 1e-9), math.ceil(n_hr / scale - 1e-9)
    if not (1 <= lo and lo <= n_lr <= hi):
        return None
    return lo


def paired_scale(lr_hw, hr_hw, scale: Optional[float], what: str) -> tuple[float, tuple[int, int]]:
    """(scale, (h, w) LR pixels to use) of an LR/HR pair: every axis must fit `scale` (lr_extent),
    or, without one, the integer scale its heights give (at least 2), the same for its widths.
    Anything else (an LR of another scale, of the HR's size, with another aspect) is a UserError
    naming the pair."""
    if scale is None:
        scale = max(1, round(hr_hw[0] / lr_hw[0]))
        if scale < 2:
            raise UserError(f'pair {what}: LR {lr_hw[0]}x{lr_hw[1]} for HR {hr_hw[0]}x{hr_hw[1]} is no '
                            'downscaled copy (an LR at least half the HR size is expected)')
    extent = tuple(lr_extent(n, m, scale) for n, m in zip(lr_hw, hr_hw))
    if None in extent:
        want = 'x'.join(f'{math.floor(m / scale + 1e-9)}' + (f'..{math.ceil(m / scale - 1e-9)}'
                        if math.ceil(m / scale - 1e-9) > math.floor(m / scale + 1e-9) else '') for m in hr_hw)
        raise UserError(f'pair {what}: LR {lr_hw[0]}x{lr_hw[1]} is not HR {hr_hw[0]}x{hr_hw[1]} at scale '
                        f'{scale:g} (expected LR {want}): a file of another scale or size')
    return scale, extent


@register('sr-implicit-downsampled-fast')
class SRImplicitDownsampledFast(SRImplicitDownsampled):
    """The SRNO and HIIF authors' wrapper: sr-implicit-downsampled whose training crops (inp_size
    given) keep as many random HR pixels as the LR crop has, inp_size^2, drawn without replacement
    in random order (their models attend over the queries of a sample, so the count is part of the
    recipe); the cell is the HR crop's, the same for every query. Without inp_size, every pixel.
    Args as sr-implicit-downsampled, without sample_q."""

    def __init__(self, dataset: Dataset, inp_size: Optional[int] = None, scale_min: float = 1,
                 scale_max: Optional[float] = None, augment: bool = False, resize: str = 'pil',
                 rgb_permute: bool = False):
        check_size(inp_size, 'inp_size')
        super().__init__(dataset, inp_size, scale_min, scale_max, augment,
                         None if inp_size is None else inp_size ** 2, resize, rgb_permute)


@register('sr-implicit-paired')
class SRImplicitPaired(Dataset):
    """(LR, HR) pairs from disk at scale s: `scale` if given (test configs give their protocol's; a
    non-integer one for LR made by scripts/make_degraded_testset.py), else the integer H_hr / H_lr;
    every pair is checked to be at that scale (paired_scale). HR cropped to what the LR covers,
    round(s * (h_lr, w_lr)), as sr-implicit-downsampled crops at s; with inp_size (integer s only),
    aligned random crops (inp_size and s * inp_size)."""

    def __init__(self, dataset: Dataset, inp_size: Optional[int] = None, augment: bool = False,
                 sample_q: Optional[int] = None, rgb_permute: bool = False, scale: Optional[float] = None):
        self.dataset, self.inp_size, self.augment, self.sample_q = dataset, inp_size, augment, sample_q
        self.augment, self.rgb_permute = check_switch(augment, 'augment'), check_switch(rgb_permute, 'rgb_permute')
        check_size(inp_size, 'inp_size')
        check_sample_q(sample_q)
        if scale is not None:
            if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) \
                    or not scale > 1:
                raise UserError(f'scale must be a number > 1, got {scale!r}')
            if inp_size is not None and not float(scale).is_integer():
                raise UserError(f'scale {scale:g}: aligned crops (inp_size) need an integer scale')
        self.scale = scale

    def __len__(self) -> int:
        return len(self.dataset)

    def check_items(self) -> None:
        """Before training: every pair is at the scale (paired_scale) and its LR holds the inp_size
        crop (from the headers); a UserError naming the first pair that is not."""
        sizes = self.dataset.item_sizes() if hasattr(self.dataset, 'item_sizes') else []
        for i, (lr_hw, hr_hw) in enumerate(sizes):
            _, (h, w) = paired_scale(lr_hw, hr_hw, self.scale, describe(self.dataset, i))
            if self.inp_size is not None and min(h, w) < self.inp_size:
                raise UserError(f'LR image of {describe(self.dataset, i)} is {h}x{w}, smaller than the '
                                f'{self.inp_size}x{self.inp_size} crop (inp_size)')

    def varying_sizes(self) -> Optional[str]:
        """Why two items can differ in size (so cannot share a batch), or None."""
        return None if self.inp_size is not None else sizes_differ(self.dataset)

    def __getitem__(self, idx: int) -> dict:
        img_lr, img_hr = self.dataset[idx]
        s, (h_lr, w_lr) = paired_scale(img_lr.shape[-2:], img_hr.shape[-2:], self.scale, describe(self.dataset, idx))
        if self.inp_size is None:
            crop_lr, crop_hr = img_lr[:, :h_lr, :w_lr], img_hr[:, :round(h_lr * s), :round(w_lr * s)]
        else:
            n, s = self.inp_size, int(s)
            if h_lr < n or w_lr < n:
                raise UserError(f'LR image of {describe(self.dataset, idx)} is {h_lr}x{w_lr}, '
                                f'smaller than the {n}x{n} crop (inp_size)')
            x0 = random.randint(0, h_lr - n)
            y0 = random.randint(0, w_lr - n)
            crop_lr = img_lr[:, x0:x0 + n, y0:y0 + n]
            crop_hr = img_hr[:, x0 * s:(x0 + n) * s, y0 * s:(y0 + n) * s]
        crop_lr, crop_hr = augment_pair(crop_lr, crop_hr, self.augment, self.rgb_permute)
        return make_sample(crop_lr, crop_hr, self.sample_q, describe(self.dataset, idx))


def shorter_side_size(h: int, w: int, side: int) -> tuple[int, int]:
    """(h, w) scaled so the shorter side is `side` (the longer one truncated), as
    torchvision's Resize(int) does; square images give (side, side)."""
    if w < h:
        return int(side * h / w), side
    return side, int(side * w / h)


@register('sr-implicit-uniform-varied')
class SRImplicitUniformVaried(Dataset):
    """(LR, HR) pairs; item i's HR is resized so its (shorter) side is round(size_min +
    (size_max - size_min) * i / (len - 1)); augment = horizontal flip with p 0.5; gt_resize
    resizes the HR once more (e.g. to evaluate at a fixed size)."""

    def __init__(self, dataset: Dataset, size_min: int, size_max: Optional[int] = None,
                 augment: bool = False, gt_resize: Optional[int] = None,
                 sample_q: Optional[int] = None, resize: str = 'pil'):
        self.dataset, self.augment, self.gt_resize, self.sample_q = dataset, check_switch(augment, 'augment'), gt_resize, sample_q
        self.size_min = check_size(size_min, 'size_min')
        self.size_max = size_min if size_max is None else check_size(size_max, 'size_max')
        check_size(gt_resize, 'gt_resize')
        check_sample_q(sample_q)
        self.resize = check_resize_method(resize)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, idx: int) -> dict:
        img_lr, img_hr = self.dataset[idx]
        p = idx / (len(self.dataset) - 1) if len(self.dataset) > 1 else 0.0
        side = round(self.size_min + (self.size_max - self.size_min) * p)
        img_hr = resize_fn(img_hr, shorter_side_size(*img_hr.shape[-2:], side), self.resize)
        if self.augment and random.random() < 0.5:
            img_lr, img_hr = img_lr.flip(-1), img_hr.flip(-1)
        if self.gt_resize is not None:
            img_hr = resize_fn(img_hr, shorter_side_size(*img_hr.shape[-2:], self.gt_resize), self.resize)
        return make_sample(img_lr, img_hr, self.sample_q, describe(self.dataset, idx))
