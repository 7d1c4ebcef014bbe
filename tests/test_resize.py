"""Bicubic resizing: the PIL path against PIL itself, the MATLAB path against MATLAB's vectors
and against values that follow from its definition."""
import math
import os

import numpy as np
import pytest
import torch
from PIL import Image

from datasets.image_store import to_tensor
from datasets.resize import (PIL_BICUBIC, imresize_matlab, imresize_matlab_uint8, matlab_out_size,
                             pil_bicubic_region, resize_fn, round_uint8)
from utils.errors import UserError

VECTORS = os.path.join(os.path.dirname(__file__), 'data', 'vectors', 'matlab-bicubic.pth')


def photo(h: int, w: int) -> np.ndarray:
    """A real photo crop (scikit-image's coffee), uint8 (h, w, 3)."""
    from skimage import data
    return np.ascontiguousarray(data.coffee()[100:100 + h, 200:200 + w])


@pytest.mark.parametrize('size', [(48, 48), (17, 33), (200, 150), (96, 96)])
def test_pil_path_equals_pil_resize_on_8bit_images(size):
    arr = photo(120, 160)
    expected = np.asarray(Image.fromarray(arr).resize((size[1], size[0]), Image.Resampling.BICUBIC))
    out = resize_fn(to_tensor(arr), size)
    assert out.shape == (3, *size) and out.dtype == torch.float32
    assert torch.equal(out, to_tensor(expected))


def test_pil_path_rounds_float_input_to_nearest_8bit_value():
    arr = photo(40, 50)
    nudged = to_tensor(arr) + torch.empty(3, 40, 50).uniform_(-0.49, 0.49) / 255
    assert torch.equal(resize_fn(nudged, (20, 25)), resize_fn(to_tensor(arr), (20, 25)))


def test_int_size_is_square_and_unknown_method_is_refused():
    assert resize_fn(to_tensor(photo(60, 80)), 30).shape == (3, 30, 30)
    with pytest.raises(UserError, match="unknown resize method 'lanczos'"):
        resize_fn(to_tensor(photo(8, 8)), 4, method='lanczos')


def test_matlab_path_matches_vectors():
    cases = torch.load(VECTORS, weights_only=True)['cases']
    assert len(cases) == 12
    for case in cases:
        inp = case['input_uint8'].numpy()
        expected = case['output_float'].double().numpy()
        assert expected.shape[:2] == matlab_out_size(inp.shape[:2], case['scale'])
        out = imresize_matlab(inp, scale=case['scale'])
        assert out.shape == expected.shape
        # On 0..255 values. Scales 1/2, 1/4 and 2 agree exactly; the rest differ by at most
        # 3.6e-4 (1.4e-6 on [0, 1]): the vectors store float32 and their generator computed the
        # sample positions in float32 (recomputing them in float32 gives 4e-5). We keep float64.
        assert np.abs(out - expected).max() < 4e-4, (case['name'], case['scale'])
        rounded = imresize_matlab_uint8(inp, scale=case['scale']).astype(int)
        assert np.abs(rounded - round_uint8(expected).astype(int)).max() <= 1


@pytest.mark.parametrize('scale', [0.5, 1 / 3, 0.25, 0.4, 2.0, 3.5])
def test_matlab_constant_image_stays_constant(scale):
    out = imresize_matlab(np.full((13, 17, 3), 77.0), scale=scale)
    assert out.shape == (math.ceil(13 * scale - 1e-9), math.ceil(17 * scale - 1e-9), 3)
    assert np.abs(out - 77.0).max() < 1e-12


def test_matlab_halving_a_ramp_averages_pixel_pairs_away_from_the_edges():
    ramp = np.tile(np.arange(40, dtype=np.float64)[:, None], (1, 3))  # (40, 3): rows 0..39
    out = imresize_matlab(ramp, scale=0.5)  # (20, 2)
    # Output j sits at input position 2j + 0.5 (0-based); the widened kernel is symmetric
    # about it, so on a ramp it returns the ramp there, until it reaches the mirrored edge.
    assert out.shape == (20, 2)
    assert np.abs(out[2:-2, :] - (2 * np.arange(20)[2:-2, None] + 0.5)).max() < 1e-12


def test_matlab_doubling_a_ramp_interpolates_it_exactly():
    ramp = np.arange(30, dtype=np.float64)[None, :].repeat(2, 0)  # (2, 30)
    out = imresize_matlab(ramp, scale=2.0)  # (4, 60)
    # Output j sits at input position j / 2 - 0.25; Keys' cubic reproduces linear functions.
    assert np.abs(out[:, 4:-4] - (np.arange(60)[4:-4] / 2 - 0.25)).max() < 1e-12


def test_matlab_hand_computed_1d_cases():
    # Halving [a, b, c, d]: output 1 at u = 1.5 with kernel 0.5 * cubic(0.5 x) over taps -3..6,
    # mirrored at the edges: weights 0.546875, 0.3984375, 0.1015625, -0.046875.
    a, b, c, d = 10.0, 50.0, 20.0, 90.0
    out = imresize_matlab(np.array([[a, b, c, d]]), size=(1, 2))
    assert out[0, 0] == pytest.approx(0.546875 * a + 0.3984375 * b + 0.1015625 * c - 0.046875 * d, abs=1e-12)
    assert out[0, 1] == pytest.approx(0.546875 * d + 0.3984375 * c + 0.1015625 * b - 0.046875 * a, abs=1e-12)
    # Doubling [a, b, c]: output 1 at u = 0.75 with cubic weights -0.0234375 (mirrored b),
    # 0.2265625 (mirrored a), 0.8671875 (a), -0.0703125 (b).
    out = imresize_matlab(np.array([[a, b, c]]), size=(1, 6))
    assert out[0, 0] == pytest.approx(1.09375 * a - 0.09375 * b, abs=1e-12)


def test_matlab_rounding_and_output_sizes():
    assert round_uint8(np.array([-3.0, 2.5, 3.49, 254.5, 300.0])).tolist() == [0, 3, 3, 255, 255]
    assert matlab_out_size((60, 13), 1 / 3) == (20, 5)
    assert matlab_out_size((13, 17), 0.4) == (6, 7)
    assert matlab_out_size((300, 299), 1 / 3) == (100, 100)


def test_matlab_method_of_resize_fn_is_matlab_on_8bit():
    arr = photo(36, 48)
    out = resize_fn(to_tensor(arr), (12, 16), method='matlab')
    assert torch.equal(out, to_tensor(imresize_matlab_uint8(arr, scale=1 / 3)))


def test_pil_bicubic_region_is_pils_resize_and_a_crop_of_itself():
    """From x1 up, PIL's bicubic bit for bit, on random sizes, scales, gray and RGB; any region,
    at any scale, is exactly the crop of the whole."""
    rng = np.random.default_rng(0)
    for trial in range(40):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        scale = float(np.exp(rng.uniform(np.log(0.2), np.log(31))))
        img = rng.integers(0, 256, (h, w) if trial % 4 == 0 else (h, w, 3), dtype=np.uint8)
        out_h, out_w = max(1, round(h * scale)), max(1, round(w * scale))
        whole = pil_bicubic_region(img, (out_h, out_w), 0, 0, out_h, out_w)
        if out_h >= h and out_w >= w:
            assert np.array_equal(whole, np.asarray(Image.fromarray(img).resize((out_w, out_h), PIL_BICUBIC)))
        for _ in range(3):
            top, left = int(rng.integers(0, out_h)), int(rng.integers(0, out_w))
            height, width = int(rng.integers(1, out_h - top + 1)), int(rng.integers(1, out_w - left + 1))
            assert np.array_equal(pil_bicubic_region(img, (out_h, out_w), top, left, height, width),
                                  whole[top:top + height, left:left + width])
