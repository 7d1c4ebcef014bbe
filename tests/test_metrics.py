"""inference.metrics against scikit-image as an independent oracle, and against hand-made values."""
import math

import numpy as np
import pytest
import torch
from skimage import data as skdata
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.transform import resize

from utils.errors import UserError
from inference.metrics import Protocol, parse_eval_type, psnr, rgb_to_y, shave, ssim

EVAL_TYPES = [None, 'div2k-2', 'div2k-4', 'benchmark-2', 'benchmark-4', 'rgb-3']


def _y_np(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) on [0, 255] -> luma (H, W), written independently of inference.metrics."""
    return 16 + (65.738 * img[..., 0] + 129.057 * img[..., 1] + 25.064 * img[..., 2]) / 256


def _oracle(pred: np.ndarray, gt: np.ndarray, eval_type):
    """scikit-image's PSNR and SSIM of two (H, W, 3) images in [0, 1] under eval_type."""
    kind, s = (None, 0) if eval_type is None else (eval_type.split('-')[0], int(eval_type.split('-')[1]))
    crop = {None: 0, 'div2k': s + 6, 'benchmark': s, 'rgb': s}[kind]
    p, g = pred * 255.0, gt * 255.0
    if kind == 'benchmark':
        p, g = _y_np(p), _y_np(g)
    if crop:
        p, g = p[crop:-crop, crop:-crop], g[crop:-crop, crop:-crop]
    ps = peak_signal_noise_ratio(g, p, data_range=255)
    kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    if p.ndim == 3:
        ss = np.mean([structural_similarity(g[..., c], p[..., c], **kw) for c in range(3)])
    else:
        ss = structural_similarity(g, p, **kw)
    return ps, ss


def _to_tensor(imgs: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float()  # (B, 3, H, W)


def _photo_pair(seed: int):
    """A real photo (skimage's astronaut, downsized) and a degraded copy: blur-like resize + noise."""
    rng = np.random.default_rng(seed)
    gt = resize(skdata.astronaut(), (96, 80), anti_aliasing=True)  # float64 in [0, 1]
    low = resize(gt, (48, 40), anti_aliasing=True)
    pred = np.clip(resize(low, (96, 80), order=3) + rng.normal(0, 0.02, gt.shape), 0, 1)
    return pred.astype(np.float32), gt.astype(np.float32)


def _random_pair(seed: int, shape=(64, 72, 3)):
    rng = np.random.default_rng(seed)
    gt = rng.random(shape, dtype=np.float32)
    pred = np.clip(gt + rng.normal(0, 0.1, shape).astype(np.float32), 0, 1)
    return pred, gt


@pytest.mark.parametrize('eval_type', EVAL_TYPES)
def test_psnr_ssim_match_skimage_batched(eval_type):
    pairs = [_photo_pair(0), _photo_pair(1), _random_pair(2, (96, 80, 3))]
    pred = _to_tensor([p for p, _ in pairs])
    gt = _to_tensor([g for _, g in pairs])
    got_psnr, got_ssim = psnr(pred, gt, eval_type), ssim(pred, gt, eval_type)
    assert got_psnr.shape == got_ssim.shape == (3,)
    for i, (p, g) in enumerate(pairs):
        want_psnr, want_ssim = _oracle(p.astype(np.float64), g.astype(np.float64), eval_type)
        assert got_psnr[i].item() == pytest.approx(want_psnr, abs=1e-4)
        assert got_ssim[i].item() == pytest.approx(want_ssim, abs=1e-4)


def test_real_photo_ssim_is_informative():
    """A clean photo against itself is 1; a degraded copy is well below 1 but positive."""
    pred, gt = _photo_pair(0)
    pred, gt = _to_tensor([pred]), _to_tensor([gt])
    assert ssim(gt, gt, 'benchmark-2').item() == pytest.approx(1.0, abs=1e-12)
    s = ssim(pred, gt, 'benchmark-2').item()
    assert 0.3 < s < 0.95


def test_psnr_of_known_mse():
    gt = torch.full((2, 3, 20, 24), 0.5)
    pred = gt.clone()
    pred[0] += 0.1  # MSE 0.01 -> 20 dB
    pred[1, :, ::2] -= 0.01  # half the rows off by 0.01: MSE 5e-5
    got = psnr(pred, gt)
    assert got[0].item() == pytest.approx(20.0, abs=1e-5)
    assert got[1].item() == pytest.approx(-10 * math.log10(5e-5), abs=1e-5)


@pytest.mark.parametrize('eval_type, crop', [('div2k-2', 8), ('benchmark-4', 4), ('rgb-3', 3)])
def test_border_crop_ignores_exactly_the_border(eval_type, crop):
    """Errors confined to the border are invisible; one pixel further in, they count."""
    gt = torch.rand(1, 3, 40, 44, generator=torch.Generator().manual_seed(0))
    pred = gt.clone()
    for sl in [(..., slice(0, crop), slice(None)), (..., slice(-crop, None), slice(None)),
               (..., slice(None), slice(0, crop)), (..., slice(None), slice(-crop, None))]:
        pred[sl] = 1 - gt[sl]
    assert math.isinf(psnr(pred, gt, eval_type).item())
    assert ssim(pred, gt, eval_type).item() == pytest.approx(1.0, abs=1e-12)
    pred[..., crop, crop] = 1 - gt[..., crop, crop]
    assert math.isfinite(psnr(pred, gt, eval_type).item())
    assert ssim(pred, gt, eval_type).item() < 1


def test_luminance_psnr_uses_weighted_channel_sum():
    """A pure-green error of 0.1: luminance difference 0.1 * 129.057 / 256."""
    gt = torch.zeros(1, 3, 16, 16)
    pred = gt.clone()
    pred[:, 1] = 0.1
    want = -20 * math.log10(0.1 * 129.057 / 256)
    assert psnr(pred, gt, 'benchmark-2').item() == pytest.approx(want, abs=1e-6)
    assert psnr(pred, gt, 'rgb-2').item() == pytest.approx(-10 * math.log10(0.01 / 3), abs=1e-6)


def test_rgb_to_y_formula():
    rgb = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.2, 0.4, 0.6]])
    img = rgb.t().reshape(1, 3, 1, 4)  # (1, 3, 1, 4): four pixels in a row
    y = rgb_to_y(img).flatten().tolist()
    assert y[0] == pytest.approx(16.0)
    assert y[1] == pytest.approx(16 + (65.738 + 129.057 + 25.064) * 255 / 256)  # 235.0
    assert y[1] == pytest.approx(235.0, abs=0.01)
    assert y[2] == pytest.approx(16 + 65.738 * 255 / 256)
    assert y[3] == pytest.approx(16 + (65.738 * 51 + 129.057 * 102 + 25.064 * 153) / 256)


def test_parse_eval_type():
    assert parse_eval_type('div2k-4') == Protocol('div2k', 4)
    assert parse_eval_type('div2k-4').crop == 10
    assert parse_eval_type('benchmark-3').crop == 3 and parse_eval_type('benchmark-3').luminance
    assert parse_eval_type('rgb-30').crop == 30 and not parse_eval_type('rgb-30').luminance
    for none in (None, '', 'none'):
        assert parse_eval_type(none) == Protocol() and Protocol().crop == 0
    assert parse_eval_type('div2k-12').eval_type == 'div2k-12'


@pytest.mark.parametrize('bad', ['div2k', 'div2k-0', 'div2k-0.5', 'bench-4', 'benchmark_4', 'rgb--2', 'rgb-2.', 4])
def test_bad_eval_type_is_a_user_error(bad):
    with pytest.raises(UserError, match='eval_type'):
        parse_eval_type(bad)


def test_image_too_small_for_crop_or_window():
    x = torch.rand(1, 3, 20, 20)
    with pytest.raises(UserError, match='too small'):
        psnr(x, x, 'div2k-4')  # crop 10 leaves nothing
    with pytest.raises(UserError, match='SSIM window'):
        ssim(x, x, 'benchmark-5')  # 10x10 left
    assert shave(x, 0) is x


def test_single_image_and_dtype_agnostic():
    pred, gt = _random_pair(3, (32, 32, 3))
    p, g = _to_tensor([pred]), _to_tensor([gt])
    assert psnr(p[0], g[0], 'rgb-2').dim() == 0
    assert psnr(p[0], g[0], 'rgb-2').item() == pytest.approx(psnr(p, g, 'rgb-2')[0].item())
    assert ssim(p.double(), g.double()).item() == pytest.approx(ssim(p, g).item(), abs=1e-6)
    with pytest.raises(ValueError):
        psnr(p, g[..., :-1])


def test_non_integer_protocols_remove_ceil_of_the_scale():
    """div2k-2.5 / benchmark-3.7 (test.py --scale): the border is ceil(S) (+ 6 for div2k);
    integer scales keep their names and borders."""
    assert parse_eval_type('div2k-2.5') == Protocol('div2k', 2.5) and parse_eval_type('div2k-2.5').crop == 9
    assert parse_eval_type('benchmark-3.7').crop == 4 and parse_eval_type('benchmark-3.7').eval_type == 'benchmark-3.7'
    assert parse_eval_type('rgb-4.0') == Protocol('rgb', 4) and parse_eval_type('rgb-4.0').eval_type == 'rgb-4'
    assert parse_eval_type('benchmark-4').crop == 4 and parse_eval_type('div2k-12').crop == 18
