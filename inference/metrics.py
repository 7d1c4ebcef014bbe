"""PSNR and SSIM under the paper's evaluation protocols (docs/design.md §5). The one home of the metrics.

An `eval_type` names a protocol:
- `div2k-S`     RGB, `S + 6` border pixels removed on each side (the paper's DIV2K numbers);
- `benchmark-S` luminance, `S` border pixels removed (the paper's Set5/Set14/B100/Urban100);
- `rgb-S`       RGB, `S` border pixels removed (mmagic 1.x's protocol);
- `mmedit-S`    the same on the prediction rounded to 8 bits first (MMEditing 0.x, whose
                tensor2img rounds: the protocol of OpenMMLab's published LIIF table);
- none          RGB, all pixels.
A non-integer scale (`benchmark-3.7`) removes ceil(S) border pixels (+ 6 for div2k).
Images are batched float tensors (B, 3, H, W) in [0, 1] on any device; results are (B,),
float64 (float32 on MPS), computed per image.
"""
import math
import re
from dataclasses import dataclass
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from utils.errors import UserError

# ITU-R BT.601 luma for 8-bit values: Y = 16 + (65.738 R + 129.057 G + 25.064 B) / 256.
Y_COEFFS = (65.738, 129.057, 25.064)
Y_OFFSET = 16.0

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5

_EVAL_TYPE = re.compile(r'^(div2k|benchmark|rgb|mmedit)-([0-9]+(?:\.[0-9]+)?)$')


@dataclass(frozen=True)
class Protocol:
    """An evaluation protocol: kind in div2k | benchmark | rgb | mmedit | none, and the scale S (an
    int, or a float for a non-integer scale such as 2.5)."""
    kind: str = 'none'
    scale: Optional[Union[int, float]] = None

    @property
    def crop(self) -> int:
        """Border pixels removed on each side: ceil(S) (+ 6 for div2k), i.e. S for integer scales."""
        if self.kind == 'none':
            return 0
        border = math.ceil(self.scale)
        return border + 6 if self.kind == 'div2k' else border

    @property
    def quantized(self) -> bool:
        """True when the prediction is rounded to 8 bits before the metrics (MMEditing 0.x)."""
        return self.kind == 'mmedit'

    @property
    def luminance(self) -> bool:
        """True when the metrics are computed on Y rather than RGB."""
        return self.kind == 'benchmark'

    @property
    def eval_type(self) -> Optional[str]:
        """The config string this protocol is parsed from (None for all pixels)."""
        return None if self.kind == 'none' else f'{self.kind}-{self.scale:g}'

    def describe(self) -> str:
        """One human line, e.g. 'luminance (Y), border 4'."""
        space = 'luminance (Y)' if self.luminance else 'RGB'
        text = f'{space}, border {self.crop}' if self.crop else f'{space}, all pixels'
        return text + (', prediction rounded to 8 bits' if self.quantized else '')


def parse_eval_type(eval_type: Union[str, Protocol, None]) -> Protocol:
    """'div2k-4' -> Protocol('div2k', 4); None, '' or 'none' -> all pixels, RGB. A UserError for
    anything else."""
    if isinstance(eval_type, Protocol):
        return eval_type
    if eval_type is None or (isinstance(eval_type, str) and eval_type.strip().lower() in ('', 'none')):
        return Protocol()
    m = _EVAL_TYPE.match(eval_type.strip()) if isinstance(eval_type, str) else None
    scale = float(m.group(2)) if m else 0.0
    if m is None or scale < 1:
        raise UserError(f'eval_type must be div2k-S, benchmark-S, rgb-S or mmedit-S with S a scale >= 1 (e.g. '
                        f'4 or 2.5), or none; got {eval_type!r}')
    return Protocol(m.group(1), int(scale) if scale.is_integer() else scale)


def as_scored(pred: Tensor, protocol: Protocol) -> Tensor:
    """The prediction (..., H, W) in [0, 1] as the protocol scores it: rounded to 8 bits
    (value * 255 rounded half to even, / 255) for quantized protocols, else as it is."""
    return pred.mul(255).round().div(255) if protocol.quantized else pred


def rgb_to_y(img: Tensor) -> Tensor:
    """img (B, 3, H, W) in [0, 1] -> luma Y (B, 1, H, W) in [16, 235], on the 8-bit scale."""
    w = img.new_tensor(Y_COEFFS).view(1, 3, 1, 1) / 256
    return Y_OFFSET + (img * 255 * w).sum(dim=1, keepdim=True)


def shave(img: Tensor, border: int) -> Tensor:
    """Remove `border` pixels from each side of (..., H, W); a UserError if nothing is left."""
    if border == 0:
        return img
    h, w = img.shape[-2:]
    if h <= 2 * border or w <= 2 * border:
        raise UserError(f'image of {h}x{w} pixels is too small for a border crop of {border}')
    return img[..., border:h - border, border:w - border]


def _batched(pred: Tensor, gt: Tensor) -> tuple[Tensor, Tensor, bool]:
    """Accept (3, H, W) or (B, 3, H, W); return 4-D tensors and whether the input was single."""
    if pred.shape != gt.shape:
        raise ValueError(f'pred {tuple(pred.shape)} and gt {tuple(gt.shape)} differ in shape')
    if pred.dim() == 3:
        return pred.unsqueeze(0), gt.unsqueeze(0), True
    if pred.dim() != 4 or pred.shape[1] != 3:
        raise ValueError(f'expected images (B, 3, H, W), got {tuple(pred.shape)}')
    return pred, gt, False


def _precise(x: Tensor) -> Tensor:
    """float64 where the device has it (SSIM's variances cancel badly in float32)."""
    return x.float() if x.device.type == 'mps' else x.double()


def psnr(pred: Tensor, gt: Tensor, eval_type: Union[str, Protocol, None] = None) -> Tensor:
    """PSNR in dB of pred vs gt, (B, 3, H, W) in [0, 1] -> (B,) (a scalar for (3, H, W)).
    -10 log10(MSE) after the protocol's border crop; on luminance the RGB difference is weighted
    by Y_COEFFS / 256 and summed over channels (the paper's benchmark protocol)."""
    proto = parse_eval_type(eval_type)
    pred, gt, single = _batched(pred, gt)
    diff = _precise(as_scored(pred, proto)) - _precise(gt)
    if proto.luminance:
        diff = (diff * diff.new_tensor(Y_COEFFS).view(1, 3, 1, 1) / 256).sum(dim=1, keepdim=True)
    diff = shave(diff, proto.crop)
    mse = diff.pow(2).flatten(1).mean(dim=1)  # (B,)
    out = -10 * torch.log10(mse)
    return out[0] if single else out


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA, device=None,
                    dtype=torch.float64) -> Tensor:
    """The normalised 1-D Gaussian (size,) whose outer product is MATLAB's fspecial window."""
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    return g / g.sum()


def _filter_valid(x: Tensor, g: Tensor) -> Tensor:
    """Separable Gaussian filter of x (B, C, H, W), valid part only -> (B, C, H-10, W-10)."""
    c = x.shape[1]
    k = g.numel()
    x = F.conv2d(x, g.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)
    return F.conv2d(x, g.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)


def ssim_map(x: Tensor, y: Tensor) -> Tensor:
    """SSIM map of x, y (B, C, H, W) on the [0, 255] scale -> (B, C, H-10, W-10), MATLAB's
    convention: 11x11 Gaussian window (sigma 1.5), valid filtering, population (co)variances,
    C1 = (0.01 * 255)^2, C2 = (0.03 * 255)^2."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    g = gaussian_window(device=x.device, dtype=x.dtype)
    mu_x, mu_y = _filter_valid(x, g), _filter_valid(y, g)
    var_x = _filter_valid(x * x, g) - mu_x ** 2
    var_y = _filter_valid(y * y, g) - mu_y ** 2
    cov = _filter_valid(x * y, g) - mu_x * mu_y
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))


def ssim(pred: Tensor, gt: Tensor, eval_type: Union[str, Protocol, None] = None) -> Tensor:
    """SSIM of pred vs gt, (B, 3, H, W) in [0, 1] -> (B,) (a scalar for (3, H, W)): on Y for
    luminance protocols, else the mean over R, G, B; same border crop as PSNR."""
    proto = parse_eval_type(eval_type)
    pred, gt, single = _batched(pred, gt)
    pred, gt = _precise(as_scored(pred, proto)), _precise(gt)
    if proto.luminance:
        x, y = rgb_to_y(pred), rgb_to_y(gt)  # (B, 1, H, W)
    else:
        x, y = pred * 255, gt * 255
    x, y = shave(x, proto.crop), shave(y, proto.crop)
    h, w = x.shape[-2:]
    if h < SSIM_WINDOW or w < SSIM_WINDOW:
        raise UserError(f'image of {h}x{w} pixels (after a border crop of {proto.crop}) is smaller '
                        f'than the {SSIM_WINDOW}x{SSIM_WINDOW} SSIM window')
    out = ssim_map(x, y).flatten(1).mean(dim=1)  # (B,)
    return out[0] if single else out
