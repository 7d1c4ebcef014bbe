"""The degradation recipe (docs/design.md §3.1): every range and probability of the high-order
degradation model, a config key each, named and valued as Real-ESRNet's training options
(Wang et al., ICCVW 2021: options/train_realesrnet_x4plus.yml), checked on construction.

Keys of the first round, and of the second with the suffix 2: kernel_list, kernel_prob,
blur_sigma, betag_range, betap_range, sinc_prob, resize_prob (up, down, keep), resize_range,
gaussian_noise_prob, noise_range (8-bit levels), poisson_scale_range, gray_noise_prob, jpeg_range
(the second round's is the final JPEG's); then second_blur_prob, final_sinc_prob, kernel_range
(odd kernel sizes from..to), resize_modes and final_resize_first_prob (the final resize and sinc
before the JPEG, else after).

Two keys that are not Real-ESRNet's, whose defaults leave its recipe as it is: second_order_prob
(the probability that the second round is applied; 1: always, as Real-ESRNet) and clean_prob (the
probability that a pair is made by plain bicubic downsampling instead, with no blur, noise or
JPEG; 0: never, as Real-ESRNet). A model trained with clean_prob 0 never sees a clean input and
over-smooths one; first-order inputs (one blur, resize, noise and JPEG) are what
second_order_prob < 1 adds.
"""
import math
from dataclasses import dataclass, fields
from typing import Any

from utils.config import Checker

from .kernels import KERNEL_TYPES

RESIZE_MODES = ('area', 'bilinear', 'bicubic')
_ALL_KERNELS = list(KERNEL_TYPES)
_KERNEL_PROB = [0.45, 0.25, 0.12, 0.03, 0.12, 0.03]

# Real-ESRNet's values: first round, second round (suffix 2 in a config).
ROUND_DEFAULTS = (
    dict(kernel_list=_ALL_KERNELS, kernel_prob=_KERNEL_PROB, blur_sigma=[0.2, 3.0], betag_range=[0.5, 4.0],
         betap_range=[1.0, 2.0], sinc_prob=0.1, resize_prob=[0.2, 0.7, 0.1], resize_range=[0.15, 1.5],
         gaussian_noise_prob=0.5, noise_range=[1.0, 30.0], poisson_scale_range=[0.05, 3.0], gray_noise_prob=0.4,
         jpeg_range=[30, 95]),
    dict(kernel_list=_ALL_KERNELS, kernel_prob=_KERNEL_PROB, blur_sigma=[0.2, 1.5], betag_range=[0.5, 4.0],
         betap_range=[1.0, 2.0], sinc_prob=0.1, resize_prob=[0.3, 0.4, 0.3], resize_range=[0.3, 1.2],
         gaussian_noise_prob=0.5, noise_range=[1.0, 25.0], poisson_scale_range=[0.05, 2.5], gray_noise_prob=0.4,
         jpeg_range=[30, 95]),
)
GLOBAL_DEFAULTS = dict(second_blur_prob=0.8, final_sinc_prob=0.8, kernel_range=[7, 21],
                       resize_modes=list(RESIZE_MODES), final_resize_first_prob=0.5,
                       second_order_prob=1.0, clean_prob=0.0)
# Largest values accepted: a sigma or size beyond these blurs a crop to a flat colour.
MAX_SIGMA, MAX_KERNEL, MAX_BETA, MAX_NOISE, MAX_POISSON, MAX_RESIZE = 50.0, 101, 100.0, 255.0, 100.0, 8.0


@dataclass(frozen=True)
class RoundRecipe:
    """The ranges and probabilities of one round (see the module doc)."""
    blur_prob: float
    kernel_list: tuple
    kernel_prob: tuple
    blur_sigma: tuple
    betag_range: tuple
    betap_range: tuple
    sinc_prob: float
    resize_prob: tuple
    resize_range: tuple
    gaussian_noise_prob: float
    noise_range: tuple
    poisson_scale_range: tuple
    gray_noise_prob: float
    jpeg_range: tuple


@dataclass(frozen=True)
class Recipe:
    """Both rounds and the final step's options."""
    first: RoundRecipe
    second: RoundRecipe
    final_sinc_prob: float
    kernel_range: tuple
    resize_modes: tuple
    final_resize_first_prob: float
    second_order_prob: float
    clean_prob: float

    def kernel_sizes(self) -> list[int]:
        """The odd kernel sizes drawn from: kernel_range[0], +2, ..., kernel_range[1]."""
        return list(range(self.kernel_range[0], self.kernel_range[1] + 1, 2))


def recipe_keys() -> list[str]:
    """Every config key of a recipe."""
    round_keys = list(ROUND_DEFAULTS[0])
    return round_keys + [f'{k}2' for k in round_keys] + list(GLOBAL_DEFAULTS)


class _Check(Checker):
    """Checker with the shapes the recipe's values take."""

    def probability(self, value: Any, key: str) -> float:
        p = self.number(value, key)
        if not 0 <= p <= 1:
            self.fail(key, f'expected a probability from 0 to 1, got {p:g}')
        return p

    def distribution(self, value: Any, key: str, length: int) -> tuple:
        if not isinstance(value, list) or len(value) != length:
            self.fail(key, f'expected a list of {length} probabilities, got {self.got(value)}')
        probs = tuple(self.probability(v, f'{key}[{i}]') for i, v in enumerate(value))
        if not math.isclose(sum(probs), 1.0, abs_tol=1e-6):
            self.fail(key, f'the probabilities must add up to 1, they add up to {sum(probs):g}')
        return probs

    def interval(self, value: Any, key: str, low: float, high: float, integer: bool = False) -> tuple:
        """[lo, hi] with low <= lo <= hi <= high."""
        if not isinstance(value, list) or len(value) != 2:
            self.fail(key, f'expected [low, high], got {self.got(value)}')
        if integer:
            lo, hi = (self.integer(v, f'{key}[{i}]', minimum=0) for i, v in enumerate(value))
        else:
            lo, hi = (self.number(v, f'{key}[{i}]') for i, v in enumerate(value))
        if not low <= lo <= hi <= high:
            self.fail(key, f'expected {low:g} <= low <= high <= {high:g}, got [{lo:g}, {hi:g}]')
        return lo, hi

    def names(self, value: Any, key: str, known: tuple) -> tuple:
        if not isinstance(value, list) or not value:
            self.fail(key, f'expected a non-empty list of {", ".join(known)}, got {self.got(value)}')
        for i, v in enumerate(value):
            self.string(v, f'{key}[{i}]', choices=known)
        if len(set(value)) != len(value):
            self.fail(key, f'names a kind twice: {value}')
        return tuple(value)


def check_round(c: _Check, values: dict, suffix: str, blur_prob: float) -> RoundRecipe:
    """A RoundRecipe from the config values of one round (keys with `suffix`), checked."""
    def v(key): return values[key + suffix]
    kernel_list = c.names(v('kernel_list'), 'kernel_list' + suffix, KERNEL_TYPES)
    sigma = c.interval(v('blur_sigma'), 'blur_sigma' + suffix, 0, MAX_SIGMA)
    if sigma[0] <= 0:
        c.fail('blur_sigma' + suffix, f'expected sigmas > 0, got {list(sigma)}')
    resize = c.interval(v('resize_range'), 'resize_range' + suffix, 0, MAX_RESIZE)
    if not 0 < resize[0] <= 1 <= resize[1]:
        c.fail('resize_range' + suffix, f'expected 0 < low <= 1 <= high (down to low, up to high), got {list(resize)}')
    betag = c.interval(v('betag_range'), 'betag_range' + suffix, 0, MAX_BETA)
    betap = c.interval(v('betap_range'), 'betap_range' + suffix, 0, MAX_BETA)
    for key, (lo, hi) in (('betag_range', betag), ('betap_range', betap)):
        if not 0 < lo <= 1 <= hi:  # drawn below or above 1 with even odds
            c.fail(key + suffix, f'expected 0 < low <= 1 <= high, got [{lo:g}, {hi:g}]')
    return RoundRecipe(
        blur_prob=blur_prob, kernel_list=kernel_list,
        kernel_prob=c.distribution(v('kernel_prob'), 'kernel_prob' + suffix, len(kernel_list)),
        blur_sigma=sigma, betag_range=betag, betap_range=betap,
        sinc_prob=c.probability(v('sinc_prob'), 'sinc_prob' + suffix),
        resize_prob=c.distribution(v('resize_prob'), 'resize_prob' + suffix, 3), resize_range=resize,
        gaussian_noise_prob=c.probability(v('gaussian_noise_prob'), 'gaussian_noise_prob' + suffix),
        noise_range=c.interval(v('noise_range'), 'noise_range' + suffix, 0, MAX_NOISE),
        poisson_scale_range=c.interval(v('poisson_scale_range'), 'poisson_scale_range' + suffix, 0, MAX_POISSON),
        gray_noise_prob=c.probability(v('gray_noise_prob'), 'gray_noise_prob' + suffix),
        jpeg_range=c.interval(v('jpeg_range'), 'jpeg_range' + suffix, 1, 100, integer=True))


def make_recipe(options: dict, where: str = 'degradation') -> Recipe:
    """A checked Recipe from config options (any subset of recipe_keys(); the rest Real-ESRNet's
    defaults). A mistake is a UserError `<where>: <key>: <what was expected>`."""
    c = _Check(where)
    known = recipe_keys()
    for key in options:
        if key not in known:
            c.fail(key, f'unknown degradation option; expected one of {", ".join(known)}')
    values = {**{k: v for k, v in ROUND_DEFAULTS[0].items()}, **{f'{k}2': v for k, v in ROUND_DEFAULTS[1].items()},
              **GLOBAL_DEFAULTS, **options}
    first = check_round(c, values, '', 1.0)
    second = check_round(c, values, '2', c.probability(values['second_blur_prob'], 'second_blur_prob'))
    sizes = c.interval(values['kernel_range'], 'kernel_range', 1, MAX_KERNEL, integer=True)
    if sizes[0] % 2 == 0 or sizes[1] % 2 == 0:
        c.fail('kernel_range', f'expected odd kernel sizes, got {list(sizes)}')
    return Recipe(first, second,
                  final_sinc_prob=c.probability(values['final_sinc_prob'], 'final_sinc_prob'),
                  kernel_range=sizes, resize_modes=c.names(values['resize_modes'], 'resize_modes', RESIZE_MODES),
                  final_resize_first_prob=c.probability(values['final_resize_first_prob'], 'final_resize_first_prob'),
                  second_order_prob=c.probability(values['second_order_prob'], 'second_order_prob'),
                  clean_prob=c.probability(values['clean_prob'], 'clean_prob'))


def recipe_fields() -> list[str]:
    """The names of a RoundRecipe's fields (for tests and docs)."""
    return [f.name for f in fields(RoundRecipe)]
