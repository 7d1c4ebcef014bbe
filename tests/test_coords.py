"""Coordinate conventions (docs/design.md §1): pixel centres, (row, col) order, non-square grids."""
import torch

import models
from models.liif import ENSEMBLE_CORNERS, corner_area, opposite_area_weights
from utils.coords import (axis_centres, latent_centres, make_cell, make_coord, sample_nearest, shift_coord,
                          to_latent_units, to_pixel_samples, unfold3x3)
from tiny import liif_spec


def test_make_coord_pixel_centres_row_col():
    coord = make_coord((2, 4), flatten=False)  # (2, 4, 2)
    assert coord.shape == (2, 4, 2)
    torch.testing.assert_close(coord[:, 0, 0], torch.tensor([-0.5, 0.5]))  # rows: -1 + (2i+1)/2
    torch.testing.assert_close(coord[0, :, 1], torch.tensor([-0.75, -0.25, 0.25, 0.75]))
    assert (coord[0, :, 0] == -0.5).all() and (coord[:, 2, 1] == 0.25).all()
    flat = make_coord((2, 4))
    assert flat.shape == (8, 2)
    torch.testing.assert_close(flat[5], torch.tensor([0.5, -0.25]))  # row 1, col 1 in row-major


def test_axis_centres_are_the_paper_codes_floats_bit_for_bit():
    """The float64-tensor scalars (exact in exported graphs, docs/design.md §11) give exactly the
    paper's Python-scalar arithmetic, for whole axes and any slice, over many sizes and spans."""
    gen = torch.Generator().manual_seed(0)
    for _ in range(2000):
        n = int(torch.randint(1, 4000, (1,), generator=gen))
        start = int(torch.randint(0, n, (1,), generator=gen))
        stop = int(torch.randint(start + 1, n + 1, (1,), generator=gen))
        v0, v1 = sorted((torch.rand(2, generator=gen, dtype=torch.float64) * 6 - 3).tolist())
        r = (v1 - v0) / (2 * n)
        paper = v0 + r + (2 * r) * torch.arange(n).float()  # the authors' make_coord, one axis
        assert torch.equal(axis_centres(n, (v0, v1)), paper)
        assert torch.equal(axis_centres(n, (v0, v1), start, stop), paper[start:stop])


def test_make_coord_ranges():
    coord = make_coord((2,), ranges=[(0, 1)])
    torch.testing.assert_close(coord[:, 0], torch.tensor([0.25, 0.75]))


def test_to_pixel_samples_order():
    img = torch.arange(3 * 3 * 5, dtype=torch.float32).view(3, 3, 5)
    coord, rgb = to_pixel_samples(img)
    assert coord.shape == (15, 2) and rgb.shape == (15, 3)
    for i in range(3):
        for j in range(5):
            q = i * 5 + j
            assert torch.equal(rgb[q], img[:, i, j])
            torch.testing.assert_close(coord[q], torch.tensor([-1 + (2 * i + 1) / 3, -1 + (2 * j + 1) / 5]))


def test_make_cell():
    coord = torch.zeros(2, 7, 2)
    cell = make_cell((30, 40), coord)
    assert cell.shape == (2, 7, 2)
    assert (cell[..., 0] == torch.tensor(2 / 30)).all() and (cell[..., 1] == torch.tensor(2 / 40)).all()


def test_sample_nearest_at_centres_returns_each_pixel():
    grid = torch.randn(2, 4, 5, 7)
    coord = make_coord((5, 7)).expand(2, -1, -1)
    out = sample_nearest(grid, coord)  # (2, 35, 4)
    assert torch.equal(out, grid.flatten(2).permute(0, 2, 1))


def test_sample_nearest_row_col_order_non_square():
    grid = torch.zeros(1, 1, 2, 3)
    grid[0, 0, 1, 2] = 1.0  # bottom-right pixel
    assert sample_nearest(grid, torch.tensor([[[0.9, 0.9]]])).item() == 1.0
    assert sample_nearest(grid, torch.tensor([[[-0.9, 0.9]]])).item() == 0.0
    # (row, col) = (0.5, -0.9) is row 1, col 0
    grid[0, 0, 1, 0] = 2.0
    assert sample_nearest(grid, torch.tensor([[[0.5, -0.9]]])).item() == 2.0


def test_sample_nearest_index_rule():
    """Index round_half_even(((c + 1) N - 1) / 2): on a 4-wide axis, c = -0.5 is exactly
    index 0.5 -> rounds to 0, c = 0.5 is 2.5 -> rounds to 2."""
    grid = torch.arange(4.0).view(1, 1, 1, 4)
    coord = torch.tensor([[[0.0, -0.5], [0.0, 0.5], [0.0, -0.49], [0.0, 0.51]]])
    assert sample_nearest(grid, coord).flatten().tolist() == [0.0, 2.0, 1.0, 3.0]


def test_latent_centres_and_corners():
    feat = torch.zeros(2, 3, 4, 5)
    centres = latent_centres(feat)
    assert centres.shape == (2, 2, 4, 5)
    torch.testing.assert_close(centres[0, :, 0, 0], torch.tensor([-0.75, -0.8]))
    torch.testing.assert_close(latent_centres(feat, top_left=True)[0, :, 0, 0], torch.tensor([-1.0, -1.0]))


def test_unfold3x3_channel_order():
    feat = torch.randn(1, 2, 4, 5)
    unf = unfold3x3(feat)  # (1, 18, 4, 5)
    padded = torch.nn.functional.pad(feat, (1, 1, 1, 1))
    for c in range(2):
        for dy in range(3):
            for dx in range(3):
                assert torch.equal(unf[0, c * 9 + 3 * dy + dx], padded[0, c, dy:dy + 4, dx:dx + 5])


def test_shift_and_latent_units():
    coord = torch.tensor([[0.0, 0.0], [0.99999, -0.99999]])
    shifted = shift_coord(coord, -1, 1, (4, 8), 1e-6)
    torch.testing.assert_close(shifted[0], torch.tensor([-0.25 + 1e-6, 0.125 + 1e-6]))
    assert shifted.max() <= 1 - 1e-6 and shifted.min() >= -1 + 1e-6
    torch.testing.assert_close(to_latent_units(torch.tensor([0.5, 0.25]), (4, 8)), torch.tensor([2.0, 2.0]))


def test_ensemble_weights_sum_to_one_and_pair_opposites():
    area = torch.rand(4, 3, 11) + 0.01
    w = opposite_area_weights(area)
    torch.testing.assert_close(w.sum(0), torch.ones(3, 11))
    torch.testing.assert_close(w[0] * area.sum(0), area[3])
    torch.testing.assert_close(w[1] * area.sum(0), area[2])
    assert ENSEMBLE_CORNERS == ((-1, -1), (-1, 1), (1, -1), (1, 1))


def test_ensemble_weights_are_bilinear_on_real_queries():
    """For a query inside the latent grid the four rectangles tile the square between four
    latent centres, 2 x 2 in latent units (centres are 2/h apart, times h): areas sum to 4."""
    h, w = 5, 6
    coord = torch.tensor([[[0.1, -0.23]]])
    centres = latent_centres(torch.zeros(1, 1, h, w))
    areas = []
    for dr, dc in ENSEMBLE_CORNERS:
        coord_ = shift_coord(coord, dr, dc, (h, w), 1e-6)
        rel = to_latent_units(coord - sample_nearest(centres, coord_), (h, w))
        areas.append(corner_area(rel))
    torch.testing.assert_close(torch.stack(areas).sum(0), torch.full((1, 1), 4.0), atol=1e-5, rtol=0)


def test_no_decoder_returns_feature_map_at_centres():
    model = models.make(liif_spec(n_feats=6, hidden=None))
    inp = torch.randn(2, 3, 5, 9)
    coord = make_coord((5, 9)).expand(2, -1, -1)
    out = model(inp, coord, make_cell((5, 9), coord))  # (2, 45, 6)
    feat = model.encoder(inp)
    assert torch.equal(out, feat.flatten(2).permute(0, 2, 1))
