"""The high-order degradation model of Real-ESRGAN (Wang et al., ICCVW 2021), at any scale
(docs/design.md §3.1): pure functions of an image, a drawn plan and a torch generator.

    plan = sample_plan(rng, recipe, hr_hw, lr_hw)   # every random choice, from a random.Random
    lr = degrade(hr, plan, generator)               # (3, H, W) -> (3, h, w), 8-bit levels in [0, 1]

Two rounds of blur -> random resize -> noise (-> JPEG in the first round), then the resize to the
LR size, the final sinc filter and JPEG in a random order, and rounding to 8 bits. The second
round is skipped with probability 1 - second_order_prob, and with probability clean_prob the pair
is plain bicubic downsampling instead (both drawn after the rest of the plan, so that the
defaults, Real-ESRNet's, draw the same plans as without these options). The first round
resizes relative to the HR size, the second relative to the LR size (Real-ESRGAN: the HR size /
4), so the recipe's ranges mean the same at every scale. The parameters and their defaults are
Real-ESRNet's training options (recipe.py); the noise values come from `generator`, everything
else from `rng`, so a plan and a seed give one image.
"""
import io
import math
import random
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from .image_store import to_tensor, to_uint8
from .kernels import filter2d, make_kernel
from .recipe import Recipe, RoundRecipe
from .resize import resize_fn

# ITU-R BT.601 luma weights: the grey image gray noise is drawn on.
GRAY_WEIGHTS = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class Blur:
    """A drawn kernel: `kind` (KERNEL_TYPES, 'sinc' or 'pulse'), odd `size` and its shape."""
    kind: str
    size: int
    sig_x: float = 1.0
    sig_y: float = 1.0
    theta: float = 0.0
    beta: float = 1.0
    omega_c: float = math.pi

    def kernel(self) -> np.ndarray:
        """The (size, size) kernel, summing to 1."""
        return make_kernel(self.kind, self.size, self.sig_x, self.sig_y, self.theta, self.beta, self.omega_c)


@dataclass(frozen=True)
class Noise:
    """Additive noise: 'gaussian' of standard deviation `level` / 255, or 'poisson' with `level`
    the scale of the shot noise; `gray` draws one noise image for the three channels."""
    kind: str
    level: float
    gray: bool


@dataclass(frozen=True)
class Round:
    """One round: blur (None: skipped), resize to `size` (h, w) by `mode`, noise, JPEG at
    `jpeg_quality` (None: the round has none)."""
    blur: Optional[Blur]
    resize_factor: float
    size: tuple[int, int]
    mode: str
    noise: Noise
    jpeg_quality: Optional[int]


@dataclass(frozen=True)
class Plan:
    """Every random choice of one degradation: two rounds (`second_order` False: the second is
    skipped), then the final resize to `lr_size` by `final_mode`, the final filter (a sinc or the
    pulse), JPEG at `final_jpeg`; `resize_first` says whether the resize and filter come before
    the JPEG. `clean`: none of it, the LR is the HR downsampled bicubically."""
    first: Round
    second: Round
    lr_size: tuple[int, int]
    final_mode: str
    final_filter: Blur
    final_jpeg: int
    resize_first: bool
    second_order: bool
    clean: bool


def uniform(rng: random.Random, bounds) -> float:
    """A draw of U(lo, hi) from rng."""
    return rng.uniform(bounds[0], bounds[1])


def sample_sinc(rng: random.Random, recipe: Recipe, final: bool) -> Blur:
    """A sinc kernel: odd size from kernel_range, cut-off U(pi/3, pi), or U(pi/5, pi) for sizes of
    13 and more outside the final filter (large kernels can be sharper)."""
    size = rng.choice(recipe.kernel_sizes())
    low = math.pi / 5 if size >= 13 and not final else math.pi / 3
    return Blur('sinc', size, omega_c=rng.uniform(low, math.pi))


def sample_blur(rng: random.Random, recipe: Recipe, r: RoundRecipe) -> Blur:
    """A kernel of a round: a sinc with probability sinc_prob, else one of kernel_list by
    kernel_prob, its size from kernel_range, sigmas U(blur_sigma), angle U(-pi, pi) (anisotropic),
    and shape beta drawn below or above 1 with even odds (betag_range, betap_range)."""
    if rng.random() < r.sinc_prob:
        return sample_sinc(rng, recipe, final=False)
    kind = rng.choices(r.kernel_list, weights=r.kernel_prob)[0]
    size = rng.choice(recipe.kernel_sizes())
    sig_x = uniform(rng, r.blur_sigma)
    if kind.endswith('_iso') or kind == 'iso':
        sig_y, theta = sig_x, 0.0
    else:
        sig_y, theta = uniform(rng, r.blur_sigma), rng.uniform(-math.pi, math.pi)
    beta = 1.0
    if kind.startswith(('generalized', 'plateau')):
        lo, hi = r.betag_range if kind.startswith('generalized') else r.betap_range
        beta = rng.uniform(lo, 1) if rng.random() < 0.5 else rng.uniform(1, hi)
    return Blur(kind, size, sig_x, sig_y, theta, beta)


def sample_noise(rng: random.Random, r: RoundRecipe) -> Noise:
    """Gaussian (sigma U(noise_range) levels) with probability gaussian_noise_prob, else Poisson
    (scale U(poisson_scale_range)); gray with probability gray_noise_prob."""
    if rng.random() < r.gaussian_noise_prob:
        kind, level = 'gaussian', uniform(rng, r.noise_range)
    else:
        kind, level = 'poisson', uniform(rng, r.poisson_scale_range)
    return Noise(kind, level, rng.random() < r.gray_noise_prob)


def sample_resize(rng: random.Random, r: RoundRecipe) -> float:
    """A resize factor: up U(1, hi), down U(lo, 1) or keep 1, by resize_prob (up, down, keep)."""
    way = rng.choices(('up', 'down', 'keep'), weights=r.resize_prob)[0]
    if way == 'up':
        return rng.uniform(1, r.resize_range[1])
    if way == 'down':
        return rng.uniform(r.resize_range[0], 1)
    return 1.0


def scaled(size, factor: float) -> tuple[int, int]:
    """size (h, w) times factor, truncated, at least 1 pixel."""
    return tuple(max(1, int(n * factor)) for n in size)


def sample_round(rng: random.Random, recipe: Recipe, r: RoundRecipe, base: tuple[int, int],
                 with_jpeg: bool) -> Round:
    """One round's draws; its resize is relative to `base` (h, w)."""
    blur = sample_blur(rng, recipe, r) if rng.random() < r.blur_prob else None
    factor = sample_resize(rng, r)
    mode = rng.choice(recipe.resize_modes)
    noise = sample_noise(rng, r)
    quality = round(uniform(rng, r.jpeg_range)) if with_jpeg else None
    return Round(blur, factor, scaled(base, factor), mode, noise, quality)


def sample_plan(rng: random.Random, recipe: Recipe, hr_size, lr_size) -> Plan:
    """Every random choice of degrading an HR image of hr_size (h, w) to lr_size (h, w)."""
    hr_size, lr_size = tuple(hr_size), tuple(lr_size)
    first = sample_round(rng, recipe, recipe.first, hr_size, with_jpeg=True)
    second = sample_round(rng, recipe, recipe.second, lr_size, with_jpeg=False)
    final_mode = rng.choice(recipe.resize_modes)
    if rng.random() < recipe.final_sinc_prob:
        final_filter = sample_sinc(rng, recipe, final=True)
    else:
        final_filter = Blur('pulse', 1)
    final_jpeg = round(uniform(rng, recipe.second.jpeg_range))
    resize_first = rng.random() < recipe.final_resize_first_prob
    second_order = rng.random() < recipe.second_order_prob
    clean = rng.random() < recipe.clean_prob
    return Plan(first, second, lr_size, final_mode, final_filter, final_jpeg, resize_first, second_order, clean)


def resize(img: Tensor, size, mode: str) -> Tensor:
    """img (3, H, W) -> (3, h, w) by torch's 'area', 'bilinear' or 'bicubic' (no antialiasing, as
    Real-ESRGAN resizes: shrinking by bilinear or bicubic aliases, part of the degradation)."""
    if tuple(size) == tuple(img.shape[-2:]):
        return img
    kwargs = {} if mode == 'area' else {'align_corners': False}
    return F.interpolate(img.unsqueeze(0), size=tuple(size), mode=mode, **kwargs)[0]


def gray(img: Tensor) -> Tensor:
    """img (3, H, W) -> its luma (1, H, W)."""
    w = torch.tensor(GRAY_WEIGHTS, dtype=img.dtype, device=img.device)
    return (img * w[:, None, None]).sum(0, keepdim=True)


def add_noise(img: Tensor, noise: Noise, generator: torch.Generator) -> Tensor:
    """img (3, H, W) plus the noise `noise` describes, drawn from `generator`, clipped to [0, 1].
    Poisson: the image in 8-bit levels (of its luma if gray) counted in photons: v = the number of
    distinct levels rounded up to a power of 2, noise = (Poisson(x v) / v - x) * level."""
    base = gray(img) if noise.gray else img  # (1 or 3, H, W)
    if noise.kind == 'gaussian':
        n = torch.randn(base.shape, generator=generator, dtype=img.dtype) * (noise.level / 255)
    else:
        levels = base.mul(255).round_().clamp_(0, 255)
        distinct = int(torch.bincount(levels.flatten().long(), minlength=256).count_nonzero())
        vals = 2 ** math.ceil(math.log2(max(distinct, 1)))
        x = levels / 255
        n = (torch.poisson(x * vals, generator=generator) / vals - x) * noise.level
    return (img + n.to(img.device)).clamp_(0, 1)  # gray noise broadcasts over the channels


def jpeg(img: Tensor, quality: int) -> Tensor:
    """img (3, H, W) in [0, 1] through a JPEG round trip at `quality` (PIL, 4:2:0 chroma), as
    8-bit levels in [0, 1]."""
    buf = io.BytesIO()
    Image.fromarray(to_uint8(img)).save(buf, format='JPEG', quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as im:
        return to_tensor(np.asarray(im.convert('RGB'))).to(img.device)


def apply_round(img: Tensor, r: Round, generator: torch.Generator) -> Tensor:
    """One round of `r` on img (3, H, W)."""
    if r.blur is not None:
        img = filter2d(img, r.blur.kernel())
    img = add_noise(resize(img, r.size, r.mode), r.noise, generator)
    return jpeg(img, r.jpeg_quality) if r.jpeg_quality is not None else img


def degrade(hr: Tensor, plan: Plan, generator: torch.Generator, clean_resize: str = 'pil') -> Tensor:
    """hr (3, H, W) float in [0, 1] -> the LR image (3, *plan.lr_size), 8-bit levels in [0, 1];
    a clean plan: hr downsampled by the bicubic `clean_resize` ('pil' or 'matlab', resize.py)."""
    if plan.clean:
        return resize_fn(hr.float(), plan.lr_size, clean_resize)
    x = apply_round(hr.float(), plan.first, generator)
    if plan.second_order:
        x = apply_round(x, plan.second, generator)
    final_kernel = plan.final_filter.kernel()
    if plan.resize_first:
        x = jpeg(filter2d(resize(x, plan.lr_size, plan.final_mode), final_kernel), plan.final_jpeg)
    else:
        x = filter2d(resize(jpeg(x, plan.final_jpeg), plan.lr_size, plan.final_mode), final_kernel)
    return x.mul(255).round_().clamp_(0, 255).div_(255)


def seeded(seed: int) -> tuple[random.Random, torch.Generator]:
    """The two generators of one degradation, from one seed: parameters and noise."""
    return random.Random(seed), torch.Generator().manual_seed(seed % 2 ** 63)


def degrade_seeded(hr: Tensor, lr_size, recipe: Recipe, seed: int, clean_resize: str = 'pil') -> Tensor:
    """hr (3, H, W) degraded to lr_size (h, w) by the plan and noise that `seed` draws (a clean
    plan by the bicubic `clean_resize`)."""
    rng, generator = seeded(seed)
    return degrade(hr, sample_plan(rng, recipe, hr.shape[-2:], lr_size), generator, clean_resize)
