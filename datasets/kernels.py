"""Blur kernels of the high-order degradation model (docs/design.md §3.1), and filtering with them.

Every kernel is a square, odd-sized float64 array summing to 1, centred on its middle tap:
- `gaussian_kernel(size, sig_x, sig_y, theta, beta)`: exp(-0.5 * q^beta) with q = x^T S^-1 x and S the
  covariance of standard deviations (sig_x, sig_y) rotated by theta; beta = 1 is the bivariate
  Gaussian, other betas the generalized Gaussian (flat-topped for beta > 1, heavy-tailed below 1);
- `plateau_kernel(...)`: 1 / (q^beta + 1), a flat top with heavy tails;
- `sinc_kernel(size, omega_c)`: the ideal circular low-pass filter of cut-off omega_c (radians per
  pixel), omega_c * J1(omega_c r) / (2 pi r), which rings like an over-sharpened or band-limited image.
Isotropic kernels have sig_y = sig_x and theta = 0. `filter2d` convolves an image with a kernel.
"""
import functools
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

KERNEL_TYPES = ('iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso')


@functools.lru_cache(maxsize=64)
def kernel_grid(size: int) -> np.ndarray:
    """(size, size, 2) float64 tap offsets (x, y) from the centre, for an odd size (read-only,
    cached: every kernel of a size shares it)."""
    ax = np.arange(size, dtype=np.float64) - size // 2
    xx, yy = np.meshgrid(ax, ax)  # rows are y, columns x
    grid = np.stack([xx, yy], axis=-1)
    grid.flags.writeable = False
    return grid


def quadratic_form(size: int, sig_x: float, sig_y: float, theta: float) -> np.ndarray:
    """(size, size) q = d^T S^-1 d at every tap offset d, S = R diag(sig_x^2, sig_y^2) R^T with R the
    rotation by theta."""
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    inv_cov = rot @ np.diag([1 / sig_x ** 2, 1 / sig_y ** 2]) @ rot.T
    x, y = kernel_grid(size)[..., 0], kernel_grid(size)[..., 1]
    return inv_cov[0, 0] * x * x + 2 * inv_cov[0, 1] * x * y + inv_cov[1, 1] * y * y


def normalised(k: np.ndarray) -> np.ndarray:
    """k divided by its sum."""
    return k / k.sum()


def gaussian_kernel(size: int, sig_x: float, sig_y: float, theta: float = 0.0, beta: float = 1.0) -> np.ndarray:
    """(size, size) generalized Gaussian exp(-0.5 * q^beta), normalised (beta 1: the Gaussian)."""
    return normalised(np.exp(-0.5 * quadratic_form(size, sig_x, sig_y, theta) ** beta))


def plateau_kernel(size: int, sig_x: float, sig_y: float, theta: float = 0.0, beta: float = 1.0) -> np.ndarray:
    """(size, size) plateau-shaped 1 / (q^beta + 1), normalised."""
    return normalised(1.0 / (quadratic_form(size, sig_x, sig_y, theta) ** beta + 1.0))


def sinc_kernel(size: int, omega_c: float) -> np.ndarray:
    """(size, size) circular low-pass filter of cut-off omega_c in (0, pi], normalised. The centre tap
    takes the limit r -> 0, omega_c^2 / (4 pi)."""
    r = np.linalg.norm(kernel_grid(size), axis=-1)
    safe = np.where(r == 0, 1.0, r)
    j1 = torch.special.bessel_j1(torch.from_numpy(omega_c * safe)).numpy()
    k = np.where(r == 0, omega_c ** 2 / (4 * math.pi), omega_c * j1 / (2 * math.pi * safe))
    return normalised(k)


def make_kernel(kind: str, size: int, sig_x: float = 1.0, sig_y: float = 1.0, theta: float = 0.0,
                beta: float = 1.0, omega_c: float = math.pi) -> np.ndarray:
    """The kernel named by `kind` (one of KERNEL_TYPES, 'sinc' or 'pulse', the identity)."""
    if kind == 'pulse':
        k = np.zeros((size, size))
        k[size // 2, size // 2] = 1.0
        return k
    if kind == 'sinc':
        return sinc_kernel(size, omega_c)
    if kind.startswith('plateau'):
        return plateau_kernel(size, sig_x, sig_y, theta, beta)
    return gaussian_kernel(size, sig_x, sig_y, theta, beta)


def smooth_length(n: int) -> int:
    """The smallest n' >= n whose only prime factors are 2, 3 and 5 (fast FFT lengths)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def filter2d(img: Tensor, kernel: np.ndarray) -> Tensor:
    """img (C, H, W) float convolved with `kernel` (k, k), edges mirrored (reflect) -> (C, H, W).
    Through the FFT: one transform per image whatever the kernel's size, 5-20x faster than a direct
    convolution at 21x21 on a CPU (the degradations run in data-loader workers)."""
    if kernel.shape == (1, 1):
        return img * float(kernel[0, 0])
    pad = kernel.shape[0] // 2
    h, w = img.shape[-2:]
    mode = 'reflect' if min(h, w) > pad else 'replicate'  # reflect needs more pixels than the pad
    x = F.pad(img.unsqueeze(0), (pad, pad, pad, pad), mode=mode)[0]  # (C, H + 2p, W + 2p)
    size = (smooth_length(x.shape[-2]), smooth_length(x.shape[-1]))
    k = torch.from_numpy(np.ascontiguousarray(kernel)).to(img.device, img.dtype)
    spectrum = torch.fft.rfft2(x, s=size) * torch.fft.rfft2(k, s=size)
    full = torch.fft.irfft2(spectrum, s=size)  # (C, *size): tap (i, j) of the valid part at i + 2p
    return full[..., 2 * pad:2 * pad + h, 2 * pad:2 * pad + w].contiguous()
