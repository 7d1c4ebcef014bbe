"""The high-order degradation model (docs/design.md §3.1): kernels against independent oracles
(separable Gaussians, scipy's Bessel J1 and convolution), noise and JPEG, the distribution of the
drawn plans (every range respected, the probabilities as configured), and the wrapper (exact LR
size, seeded pairs identical, 8-bit levels)."""
import dataclasses
import io
import math
import random
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage, special

import datasets
from datasets.degradations import Noise, add_noise, degrade_seeded, jpeg, sample_plan, seeded
from datasets.image_store import to_tensor, to_uint8
from datasets.kernels import filter2d, gaussian_kernel, make_kernel, plateau_kernel, sinc_kernel
from datasets.recipe import ROUND_DEFAULTS, make_recipe, recipe_keys
from utils.errors import UserError

DEFAULT = make_recipe({})


def gauss1d(size, sigma):
    x = np.arange(size) - size // 2
    g = np.exp(-x ** 2 / (2 * sigma ** 2))
    return g / g.sum()


def test_gaussian_kernels_match_separable_oracle():
    assert np.allclose(gaussian_kernel(21, 2.0, 2.0), np.outer(gauss1d(21, 2.0), gauss1d(21, 2.0)), atol=1e-12)
    # sig_x along columns (x), sig_y along rows (y); a quarter turn swaps them
    k = gaussian_kernel(15, 3.0, 1.0, 0.0)
    assert np.allclose(k, np.outer(gauss1d(15, 1.0), gauss1d(15, 3.0)), atol=1e-12)
    assert np.allclose(gaussian_kernel(15, 3.0, 1.0, math.pi / 2), k.T, atol=1e-12)


@pytest.mark.parametrize('size,sx,sy,theta,beta', [(21, 2.5, 0.7, 0.4, 1.7), (9, 0.5, 1.3, -2.0, 0.6)])
def test_generalized_and_plateau_formulas(size, sx, sy, theta, beta):
    """exp(-0.5 q^beta) and 1 / (q^beta + 1), q the Mahalanobis distance of each tap, by a float64 loop."""
    c, s = math.cos(theta), math.sin(theta)
    cov = np.array([[c, -s], [s, c]]) @ np.diag([sx ** 2, sy ** 2]) @ np.array([[c, s], [-s, c]])
    inv = np.linalg.inv(cov)
    q = np.zeros((size, size))
    for i in range(size):
        for j in range(size):
            d = np.array([j - size // 2, i - size // 2])  # (x, y)
            q[i, j] = d @ inv @ d
    g, p = np.exp(-0.5 * q ** beta), 1 / (q ** beta + 1)
    assert np.allclose(gaussian_kernel(size, sx, sy, theta, beta), g / g.sum(), atol=1e-12)
    assert np.allclose(plateau_kernel(size, sx, sy, theta, beta), p / p.sum(), atol=1e-12)
    for k in (gaussian_kernel(size, sx, sy, theta, beta), plateau_kernel(size, sx, sy, theta, beta)):
        assert np.allclose(k, k[::-1, ::-1])  # centrally symmetric: convolution == correlation


@pytest.mark.parametrize('size,omega', [(7, math.pi / 3), (13, 2.0), (21, math.pi)])
def test_sinc_kernel_is_the_circular_low_pass(size, omega):
    r = np.hypot(*np.meshgrid(np.arange(size) - size // 2, np.arange(size) - size // 2))
    with np.errstate(invalid='ignore', divide='ignore'):
        k = omega * special.j1(omega * r) / (2 * np.pi * r)
    k[size // 2, size // 2] = omega ** 2 / (4 * np.pi)
    assert np.allclose(sinc_kernel(size, omega), k / k.sum(), atol=1e-7)
    assert (sinc_kernel(size, omega) < 0).any()  # ringing lobes


def test_pulse_is_the_identity():
    img = torch.rand(3, 20, 17)
    assert torch.allclose(filter2d(img, make_kernel('pulse', 7)), img, atol=1e-6)
    assert torch.equal(filter2d(img, make_kernel('pulse', 1)), img)


@pytest.mark.parametrize('shape,size', [((3, 40, 33), 7), ((3, 64, 64), 21), ((3, 9, 12), 21)])
def test_filter2d_matches_scipy_convolution(shape, size):
    """A non-symmetric kernel pins the orientation; edges mirrored without repeating the edge pixel
    (scipy's 'mirror', torch's 'reflect'); images smaller than the kernel repeat the edge."""
    rng = np.random.default_rng(0)
    img = rng.random(shape)
    k = rng.random((size, size))
    k /= k.sum()
    got = filter2d(torch.from_numpy(img).float(), k).double().numpy()
    small = min(shape[1:]) <= size // 2
    want = np.stack([ndimage.convolve(c, k, mode='nearest' if small else 'mirror') for c in img])
    assert got.shape == img.shape
    assert np.abs(got - want).max() < 1e-5


def test_gaussian_noise_level_and_gray():
    img = torch.full((3, 200, 200), 0.5)
    g = torch.Generator().manual_seed(0)
    out = add_noise(img, Noise('gaussian', 10.0, gray=False), g)
    assert abs((out - img).std().item() * 255 - 10.0) < 0.2
    assert (out[0] - out[1]).abs().mean() > 0.01  # colour noise: channels differ
    grey = add_noise(img, Noise('gaussian', 10.0, gray=True), g)
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    clipped = add_noise(torch.zeros(3, 50, 50), Noise('gaussian', 30.0, gray=False), g)
    assert clipped.min() >= 0


def test_poisson_noise_variance():
    """Poisson(x v) / v - x has variance x / v, scaled by level^2; v is the number of distinct
    8-bit levels rounded up to a power of 2."""
    rng = np.random.default_rng(1)
    img = torch.from_numpy(rng.integers(0, 256, (3, 300, 300)).astype(np.float32) / 255)  # 256 levels -> v 256
    g = torch.Generator().manual_seed(0)
    flat = torch.full((3, 300, 300), 0.5)
    flat[0, 0, 0] = 0  # two levels -> v = 2
    for base, vals, level in ((img, 256, 2.0), (flat, 2, 0.1)):  # levels small enough not to clip
        noise = add_noise(base, Noise('poisson', level, gray=False), g) - base
        inside = (base > 0.3) & (base < 0.7)
        want = (base[inside] / vals).mean().item() * level ** 2
        assert abs(noise[inside].var().item() / want - 1) < 0.1


def test_jpeg_is_pil_round_trip():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (31, 45, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format='JPEG', quality=40)
    want = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert('RGB'))
    assert np.array_equal(to_uint8(jpeg(to_tensor(arr), 40)), want)


def plans(recipe, n, hr=(192, 192), lr=(48, 48), seed=0):
    rng = random.Random(seed)
    return [sample_plan(rng, recipe, hr, lr) for _ in range(n)]


def blurs(ps):
    return [(p.first.blur, ROUND_DEFAULTS[0]) for p in ps] + \
           [(p.second.blur, ROUND_DEFAULTS[1]) for p in ps if p.second.blur is not None]


def test_default_plans_respect_real_esrnet_ranges():
    ps = plans(DEFAULT, 3000)
    for blur, opts in blurs(ps):
        assert blur.size % 2 == 1 and 7 <= blur.size <= 21
        if blur.kind == 'sinc':
            low = math.pi / 5 if blur.size >= 13 else math.pi / 3
            assert low <= blur.omega_c <= math.pi
            continue
        for sig in (blur.sig_x, blur.sig_y):
            assert opts['blur_sigma'][0] <= sig <= opts['blur_sigma'][1]
        if 'iso' in blur.kind and 'aniso' not in blur.kind:
            assert blur.sig_x == blur.sig_y and blur.theta == 0
        lo, hi = opts['betag_range'] if blur.kind.startswith('generalized') else \
            opts['betap_range'] if blur.kind.startswith('plateau') else (1, 1)
        assert lo <= blur.beta <= hi
    for p in ps:
        for r, opts, base in ((p.first, ROUND_DEFAULTS[0], (192, 192)), (p.second, ROUND_DEFAULTS[1], (48, 48))):
            assert opts['resize_range'][0] <= r.resize_factor <= opts['resize_range'][1]
            assert r.size == tuple(max(1, int(n * r.resize_factor)) for n in base)
            level_range = opts['noise_range'] if r.noise.kind == 'gaussian' else opts['poisson_scale_range']
            assert level_range[0] <= r.noise.level <= level_range[1]
            assert r.mode in ('area', 'bilinear', 'bicubic')
        assert 30 <= p.first.jpeg_quality <= 95 and 30 <= p.final_jpeg <= 95 and p.second.jpeg_quality is None
        assert p.final_filter.kind in ('sinc', 'pulse')
        if p.final_filter.kind == 'sinc':
            assert math.pi / 3 <= p.final_filter.omega_c <= math.pi and 7 <= p.final_filter.size <= 21
    n = len(ps)

    def share(pred, items):
        return sum(map(pred, items)) / len(items)
    assert all(p.second_order and not p.clean for p in ps)  # Real-ESRNet: always second order, never clean
    assert abs(share(lambda p: p.second.blur is not None, ps) - 0.8) < 0.03
    assert abs(share(lambda p: p.final_filter.kind == 'sinc', ps) - 0.8) < 0.03
    assert abs(share(lambda p: p.resize_first, ps) - 0.5) < 0.03
    assert abs(share(lambda p: p.first.noise.kind == 'gaussian', ps) - 0.5) < 0.03
    assert abs(share(lambda p: p.first.noise.gray, ps) - 0.4) < 0.03
    assert abs(share(lambda p: p.first.blur.kind == 'sinc', ps) - 0.1) < 0.02
    ways = Counter('up' if p.first.resize_factor > 1 else 'down' if p.first.resize_factor < 1 else 'keep' for p in ps)
    assert abs(ways['down'] / n - 0.7) < 0.03 and abs(ways['keep'] / n - 0.1) < 0.02
    kinds = Counter(p.first.blur.kind for p in ps if p.first.blur.kind != 'sinc')
    assert abs(kinds['iso'] / sum(kinds.values()) - 0.45) < 0.03
    assert set(Counter(p.first.blur.size for p in ps)) == set(range(7, 22, 2))


def test_configured_ranges_are_respected():
    recipe = make_recipe({'blur_sigma': [0.5, 0.6], 'noise_range': [3.0, 4.0], 'gaussian_noise_prob': 1.0,
                          'jpeg_range2': [70, 72], 'kernel_range': [3, 5], 'kernel_list': ['aniso'],
                          'kernel_prob': [1.0], 'sinc_prob': 0.0, 'resize_prob': [0.0, 0.0, 1.0],
                          'final_sinc_prob': 0.0, 'resize_modes': ['area']})
    for p in plans(recipe, 300):
        b = p.first.blur
        assert b.kind == 'aniso' and b.size in (3, 5) and 0.5 <= b.sig_x <= 0.6 and 0.5 <= b.sig_y <= 0.6
        assert p.first.noise.kind == 'gaussian' and 3 <= p.first.noise.level <= 4
        assert 70 <= p.final_jpeg <= 72 and p.first.resize_factor == 1.0
        assert p.final_filter.kind == 'pulse' and {p.first.mode, p.second.mode, p.final_mode} == {'area'}


def test_second_order_and_clean_probabilities_leave_the_other_draws():
    mixed = make_recipe({'second_order_prob': 0.3, 'clean_prob': 0.2})
    ps, ref = plans(mixed, 3000, seed=4), plans(DEFAULT, 3000, seed=4)
    assert abs(sum(p.second_order for p in ps) / len(ps) - 0.3) < 0.03
    assert abs(sum(p.clean for p in ps) / len(ps) - 0.2) < 0.03
    # drawn last, from the same stream whatever their probabilities: every other draw is the defaults'
    assert all(dataclasses.replace(p, second_order=True, clean=False) == r for p, r in zip(ps, ref))
    assert all(p.second_order for p in plans(make_recipe({'second_order_prob': 1.0}), 200))
    assert not any(p.second_order or p.clean for p in plans(make_recipe({'second_order_prob': 0.0}), 200))


def test_first_order_plan_is_the_plan_without_its_second_round():
    """A plan with second_order False degrades as the same plan whose second round does nothing
    (no blur, the size the first round leaves, zero noise, no JPEG)."""
    from datasets.degradations import Noise, Round, degrade
    rng = np.random.default_rng(2)
    hr = to_tensor(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8))
    for seed in range(8):
        plan = sample_plan(seeded(seed)[0], DEFAULT, (90, 120), (30, 40))
        idle = Round(None, 1.0, plan.first.size, 'area', Noise('gaussian', 0.0, False), None)
        got = degrade(hr, dataclasses.replace(plan, second_order=False), torch.Generator().manual_seed(seed))
        want = degrade(hr, dataclasses.replace(plan, second=idle), torch.Generator().manual_seed(seed))
        assert torch.equal(got, want)
        assert not torch.equal(got, degrade(hr, plan, torch.Generator().manual_seed(seed)))


@pytest.mark.parametrize('method', ['pil', 'matlab'])
def test_clean_plan_is_plain_bicubic(method):
    from datasets.resize import resize_uint8
    rng = np.random.default_rng(3)
    arr = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    always = make_recipe({'clean_prob': 1.0})
    for seed in range(3):
        lr = degrade_seeded(to_tensor(arr), (30, 45), always, seed, clean_resize=method)
        assert np.array_equal(to_uint8(lr), resize_uint8(arr, (30, 45), method))


def test_degrade_gives_exact_size_and_8bit_levels():
    rng = np.random.default_rng(0)
    hr = to_tensor(rng.integers(0, 256, (97, 131, 3), dtype=np.uint8))
    for seed in range(6):
        lr = degrade_seeded(hr, (29, 40), DEFAULT, seed)
        assert lr.shape == (3, 29, 40)
        assert torch.equal(lr, (lr * 255).round() / 255) and lr.min() >= 0 and lr.max() <= 1
        assert torch.equal(lr, degrade_seeded(hr, (29, 40), DEFAULT, seed))
    assert not torch.equal(degrade_seeded(hr, (29, 40), DEFAULT, 1), degrade_seeded(hr, (29, 40), DEFAULT, 2))
    rng_a, gen_a = seeded(5)
    assert sample_plan(rng_a, DEFAULT, (97, 131), (29, 40)) == sample_plan(seeded(5)[0], DEFAULT, (97, 131), (29, 40))


@pytest.fixture(scope='module')
def photo_folder(tmp_path_factory):
    from skimage import data
    root = tmp_path_factory.mktemp('deg') / 'hr'
    root.mkdir()
    Image.fromarray(data.astronaut()[100:300, 150:310]).save(root / 'astronaut.png')  # crops: quick tests
    Image.fromarray(data.coffee()[50:180, 200:400]).save(root / 'coffee.png')
    return datasets.make({'name': 'image-folder', 'args': {'root_path': str(root), 'repeat': 4}})


def wrap(folder, **args):
    return datasets.make({'name': 'sr-implicit-degraded', 'args': args}, args={'dataset': folder})


def test_wrapper_training_items(photo_folder):
    w = wrap(photo_folder, inp_size=32, scale_min=1.5, scale_max=4, augment=True, sample_q=1024, rgb_permute=True)
    datasets.seed_all(0)
    items = [w[i] for i in range(len(w))]
    for it in items:
        assert it['inp'].shape == (3, 32, 32) and it['coord'].shape == (1024, 2) and it['gt'].shape == (1024, 3)
        hr_side = round(2 / it['cell'][0, 0].item())
        assert 32 * 1.5 <= hr_side <= 32 * 4  # HR crop round(32 s), s in [1.5, 4]
        assert torch.equal(it['inp'], (it['inp'] * 255).round() / 255)
    datasets.seed_all(0)
    again = [w[i] for i in range(len(w))]
    assert all(torch.equal(a[k], b[k]) for a, b in zip(items, again) for k in a)
    datasets.seed_all(1)
    assert not torch.equal(w[0]['inp'], items[0]['inp'])


def test_wrapper_whole_images_follow_downsampled_sizes(photo_folder):
    """Without inp_size: LR floor(H / s), HR cropped to round(h_lr * s), as sr-implicit-downsampled."""
    for s in (2.0, 2.7):
        w = wrap(photo_folder, scale_min=s)
        plain = datasets.make({'name': 'sr-implicit-downsampled', 'args': {'scale_min': s}},
                              args={'dataset': photo_folder})
        for idx in (0, 1):
            it, ref = w[idx], plain[idx]
            assert it['inp'].shape == ref['inp'].shape
            assert torch.equal(it['gt'], ref['gt']) and torch.equal(it['cell'], ref['cell'])


@pytest.mark.parametrize('method', ['pil', 'matlab'])
def test_wrapper_clean_pairs_are_the_bicubic_wrappers(photo_folder, method):
    """clean_prob 1: every LR is sr-implicit-downsampled's with the same `resize`."""
    w = wrap(photo_folder, scale_min=2.5, degradation={'clean_prob': 1.0}, resize=method)
    plain = datasets.make({'name': 'sr-implicit-downsampled', 'args': {'scale_min': 2.5, 'resize': method}},
                          args={'dataset': photo_folder})
    for idx in (0, 1):
        assert torch.equal(w[idx]['inp'], plain[idx]['inp'])
    with pytest.raises(UserError, match='unknown resize method'):
        wrap(photo_folder, inp_size=48, resize='nearest')


def test_wrapper_in_loader_workers_is_seeded(photo_folder):
    w = wrap(photo_folder, inp_size=24, scale_max=3, sample_q=100)

    def epoch(seed):
        datasets.seed_all(seed)
        loader = torch.utils.data.DataLoader(w, batch_size=4, num_workers=2, worker_init_fn=datasets.seed_worker)
        return torch.cat([b['inp'] for b in loader])
    assert torch.equal(epoch(3), epoch(3))


@pytest.mark.parametrize('options,message', [
    ({'noise_range': [1.0, 'a']}, 'noise_range[1]: expected a number'),
    ({'noise_range': [30.0, 1.0]}, 'noise_range: expected 0 <= low <= high <= 255'),
    ({'sinc_prob': 1.5}, 'sinc_prob: expected a probability'),
    ({'gray_noise_prob2': True}, 'gray_noise_prob2: expected a number'),
    ({'resize_prob': [0.5, 0.6, 0.1]}, 'resize_prob: the probabilities must add up to 1'),
    ({'kernel_list': ['iso', 'box']}, 'kernel_list[1]: expected one of iso'),
    ({'kernel_list': ['iso']}, 'kernel_prob: expected a list of 1 probabilities'),
    ({'kernel_range': [6, 21]}, 'kernel_range: expected odd kernel sizes'),
    ({'kernel_range': [7.0, 21]}, 'kernel_range[0]: expected an integer'),
    ({'jpeg_range': [0, 95]}, 'jpeg_range: expected 1 <= low'),
    ({'resize_range': [1.2, 1.5]}, 'resize_range: expected 0 < low <= 1 <= high'),
    ({'blur_sigma': [0.0, 3.0]}, 'blur_sigma: expected sigmas > 0'),
    ({'betag_range': [1.5, 4.0]}, 'betag_range: expected 0 < low <= 1 <= high'),
    ({'noise_range': [1.0, float('nan')]}, 'noise_range[1]: expected a finite number'),
    ({'poisson_scale_range': '1e-2'}, 'poisson_scale_range: expected [low, high]'),
    ({'resize_modes': ['nearest']}, 'resize_modes[0]: expected one of area'),
    ({'jpeg_rnage': [30, 95]}, 'jpeg_rnage: unknown degradation option'),
    ({'clean_prob': 1.5}, 'clean_prob: expected a probability from 0 to 1, got 1.5'),
    ({'second_order_prob': -0.1}, 'second_order_prob: expected a probability from 0 to 1'),
    ({'clean_prob': '0.2'}, 'clean_prob: expected a number'),
])
def test_bad_options_are_one_line(options, message):
    with pytest.raises(UserError, match='^degradation: ' + message.replace('[', r'\[').replace(']', r'\]')):
        make_recipe(options)


def test_wrapper_refuses_bad_arguments(photo_folder):
    with pytest.raises(UserError, match=r'args.augment: expected true or false'):
        wrap(photo_folder, inp_size=48, augment='yes')
    with pytest.raises(UserError, match='degradation must be a mapping'):
        wrap(photo_folder, inp_size=48, degradation=[1])
    with pytest.raises(UserError, match='need 0 < scale_min <= scale_max'):
        wrap(photo_folder, inp_size=48, scale_min=3, scale_max=2)


def test_config_listing_the_options_spells_out_the_defaults():
    from training.config import load_train_config
    cfg = load_train_config('configs/train-div2k/train_edsr-baseline-liif-real.yaml')
    options = cfg['train_dataset']['wrapper']['args']['degradation']
    assert set(options) == set(recipe_keys())
    assert make_recipe(options) == DEFAULT
