"""`sr-implicit-degraded`: LIIF's random-scale training pairs with Real-ESRGAN's high-order
degradations instead of bicubic downsampling (docs/design.md §3.1)."""
import random
from typing import Optional

from torch import Tensor
from torch.utils.data import Dataset

from utils.errors import UserError

from .degradations import degrade_seeded
from .recipe import make_recipe
from .registry import register
from .wrappers import SRImplicitDownsampled

SEED_BITS = 63


@register('sr-implicit-degraded')
class SRImplicitDegraded(SRImplicitDownsampled):
    """HR images -> (degraded LR, HR samples) at a random scale s ~ U(scale_min, scale_max) per
    item, cropped as `sr-implicit-downsampled` crops (the LR exactly inp_size, or floor(H / s)),
    the LR made by the high-order degradation model with the options of `degradation` (a mapping
    of recipe keys; missing keys take Real-ESRNet's values, datasets/recipe.py); the pairs its
    clean_prob makes clean are downsampled by the bicubic `resize` ('pil' or 'matlab'), as
    `sr-implicit-downsampled` makes them.

    Each item draws one 63-bit seed from Python's `random` (after the scale and crop); the
    degradation's parameters and noise follow from it alone, so the wrapper is seeded like the
    others: the same global seed gives the same pairs, and validation (run under a fixed seed)
    sees the same pairs every epoch."""

    def __init__(self, dataset: Dataset, inp_size: Optional[int] = None, scale_min: float = 1,
                 scale_max: Optional[float] = None, augment: bool = False, sample_q: Optional[int] = None,
                 rgb_permute: bool = False, degradation: Optional[dict] = None, resize: str = 'pil'):
        super().__init__(dataset, inp_size, scale_min, scale_max, augment, sample_q, resize, rgb_permute=rgb_permute)
        if degradation is not None and not isinstance(degradation, dict):
            raise UserError(f'degradation must be a mapping of degradation options, got {degradation!r}')
        self.recipe = make_recipe(degradation or {}, 'degradation')

    def make_lr(self, crop_hr: Tensor, lr_size: tuple[int, int]) -> Tensor:
        """The LR input (3, *lr_size): crop_hr degraded by a plan drawn from a fresh seed."""
        return degrade_seeded(crop_hr, lr_size, self.recipe, random.getrandbits(SEED_BITS), self.resize)
