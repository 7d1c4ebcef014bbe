"""ONNX export and the ONNX Runtime backend (README "Deploy", docs/deploy.md): the file's contract
as the README states it, onnxruntime alone == PyTorch, the backend == the PyTorch renderer (tiles,
chunks, bands), the README's and docs' examples run as written, and every refusal in one line.
Every family and encoder, the vectors' checkpoints and the bundled model: tests/test_onnx_families.py."""
import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.onnx._constants
from PIL import Image

import demo
from faults import one_line_error
from inference.norm import DataNorm
from inference.onnx_backend import OnnxModel, load_onnx_model
from inference.onnx_format import META_KEY
from inference.render import render
from inference.upscale import Upscaler, as_loaded
from script_loader import load_script
from tiny import liif_spec, tiny_checkpoint
from utils.coords import make_cell, make_coord
from utils.errors import UserError

REPO = Path(__file__).resolve().parents[1]
DOCS = ('README.md', 'docs/deploy.md')  # the documents whose Deploy examples are run as written
export_script = load_script('scripts/export_onnx.py', 'export_onnx_script')
# A per-channel normalisation (MMEditing's DIV2K mean), so the graph's own normalisation is tested.
MEAN_NORM = {'inp': {'sub': [0.4488, 0.4371, 0.404], 'div': [1.0]},
             'gt': {'sub': [0.4488, 0.4371, 0.404], 'div': [1.0]}}


@pytest.fixture(scope='module')
def exported(tmp_path_factory) -> SimpleNamespace:
    """A tiny LIIF checkpoint (per-channel normalisation) and its export by scripts/export_onnx.py."""
    folder = tmp_path_factory.mktemp('onnx')
    ckpt, out = folder / 'tiny.pth', folder / 'tiny.onnx'
    torch.manual_seed(0)
    model = tiny_checkpoint(ckpt, liif_spec(n_feats=8, hidden=(16, 16)), data_norm=MEAN_NORM)
    size, worst = export_script.export(str(ckpt), str(out))
    return SimpleNamespace(ckpt=ckpt, onnx=out, model=model, norm=DataNorm.from_config(MEAN_NORM),
                           size=size, worst=worst)


def photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth uint8 (h, w, 3) image with some texture (not noise, so outputs vary smoothly)."""
    y, x = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(seed)
    img = np.stack([np.sin(x / (2 + c) + y / (3 + c)) for c in range(3)], -1) * 90 + 128
    return np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)


def queries(out_hw, n_random: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """coord (1, Q, 2): the pixel centres of out_hw and n_random random points; their cells."""
    g = torch.Generator().manual_seed(seed)
    coord = torch.cat([make_coord(out_hw), torch.rand(n_random, 2, generator=g) * 2 - 1]).unsqueeze(0)
    return coord, make_cell(out_hw, coord)


def pytorch_rgb(e: SimpleNamespace, image: torch.Tensor, coord, cell) -> np.ndarray:
    with torch.no_grad():
        return e.norm.pred_to_rgb(e.model(e.norm.inp(image), coord, cell)).numpy()


def closest_levels(a: np.ndarray, b: np.ndarray) -> None:
    """Two 8-bit renderings: within one level everywhere, and almost all identical."""
    assert a.shape == b.shape and a.dtype == b.dtype == np.uint8
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    assert (a == b).mean() > 0.995


def deploy_section() -> str:
    text = (REPO / 'README.md').read_text()
    return text[text.index('\n## Deploy\n'):].split('\n## ', 2)[1]


def code_blocks(text: str, lang: str = 'python') -> list[str]:
    return re.findall(rf'```{lang}\n(.*?)```', text, re.S)


# ---------------------------------------------------------------- the file

def test_onnxruntime_alone_equals_pytorch(exported):
    assert exported.worst <= 1e-4 and exported.size == exported.onnx.stat().st_size
    session = ort.InferenceSession(str(exported.onnx), providers=['CPUExecutionProvider'])
    cases = [((7, 11), (26, 41)), ((12, 5), (7, 3)), ((16, 16), (37, 29)), ((1, 6), (3, 22))]
    for seed, (in_hw, out_hw) in enumerate(cases):
        image = torch.from_numpy(photo(*in_hw, seed)).permute(2, 0, 1)[None].float() / 255
        coord, cell = queries(out_hw, 50, seed)
        # On a 1-row input, a query on row 0.0 is at the latent centre's row for all four corners:
        # every area is the 1e-9 floor alone (an exporter that drops `+ 1e-9` makes NaNs there).
        coord[0, -10:, 0] = 0.0
        got = session.run(['rgb'], {'image': image.numpy(), 'coord': coord.numpy(), 'cell': cell.numpy()})[0]
        want = pytorch_rgb(exported, image, coord, cell)
        assert got.shape == want.shape == (1, coord.shape[1], 3)
        assert np.abs(got - want).max() <= 1e-4
        assert got.min() >= 0 and got.max() <= 1


def test_the_contract_is_the_readme_s(exported):
    """The README's table (names, roles, types, shapes) and opset are the file's, and only the
    standard ONNX operator set is used (no custom operators)."""
    proto = onnx.load(str(exported.onnx))
    rows = re.findall(r'^\| `(\w+)` \| (input|output) \| (\w+) \| \(([^)]*)\) \|', deploy_section(), re.M)
    assert [r[0] for r in rows] == ['image', 'coord', 'cell', 'rgb']

    def described(value) -> tuple:
        t = value.type.tensor_type
        dims = tuple(d.dim_param or str(d.dim_value) for d in t.shape.dim)
        return onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name, dims

    graph = {'input': {v.name: described(v) for v in proto.graph.input},
             'output': {v.name: described(v) for v in proto.graph.output}}
    assert {k: len(v) for k, v in graph.items()} == {'input': 3, 'output': 1}
    for name, role, dtype, shape in rows:
        assert graph[role][name] == (dtype, tuple(d.strip() for d in shape.split(','))), name
    stated = int(re.search(r"default opset, \*\*(\d+)\*\*", deploy_section()).group(1))
    opsets = {o.domain: o.version for o in proto.opset_import}
    assert opsets == {'': stated} and stated == torch.onnx._constants.ONNX_DEFAULT_OPSET
    assert {n.domain for n in proto.graph.node} <= {'', 'ai.onnx'} and not proto.functions
    meta = json.loads({p.key: p.value for p in proto.metadata_props}[META_KEY])
    assert meta['stages']['encode'] == {'inputs': ['image'], 'outputs': ['feat']}
    assert meta['stages']['query'] == {'inputs': ['table', 'coord', 'cell'], 'outputs': ['rgb']}
    assert meta['receptive_radius'] == 4 and meta['window_size'] is None  # head, 1 block, body: 1 + 2 + 1
    assert DataNorm.from_config(meta['data_norm']) == exported.norm


def test_encode_once_and_query_in_chunks_equals_the_whole_graph(exported):
    model = load_onnx_model(exported.onnx)
    session = ort.InferenceSession(str(exported.onnx), providers=['CPUExecutionProvider'])
    image = torch.from_numpy(photo(9, 13)).permute(2, 0, 1)[None].float() / 255
    coord, cell = queries((20, 31), 9)
    whole = session.run(['rgb'], {'image': image.numpy(), 'coord': coord.numpy(), 'cell': cell.numpy()})[0]
    model.gen_feat(image)
    model.query_piece = 7  # pieces smaller than the chunks too
    chunks = [model.query_rgb(coord[:, i:i + 50], cell[:, i:i + 50]) for i in range(0, coord.shape[1], 50)]
    assert np.abs(torch.cat(chunks, 1).numpy() - whole).max() <= 1e-6


# ---------------------------------------------------------------- the backend

def test_backend_renders_like_pytorch_with_tiles_chunks_and_bands(exported):
    options = dict(tile=10, bsize=97)
    pt = Upscaler.load(exported.ckpt, 'cpu', **options)
    rt = Upscaler.load(exported.onnx, 'cpu', backend='onnxruntime', **options)
    assert isinstance(rt.model, OnnxModel) and rt.tile_for((19, 23)) == 10  # the encoder is tiled
    lr = photo(19, 23)
    for kw in ({'scale': 3.7}, {'resolution': (40, 61)}):
        closest_levels(rt(lr, **kw), pt(lr, **kw))
    img = torch.from_numpy(lr).permute(2, 0, 1)[None].float() / 255
    a = render(rt.model, img, (31, 45), rt.norm, bsize=50, band_rows=6, tile=10)
    b = render(pt.model, img, (31, 45), pt.norm, bsize=50, band_rows=6, tile=10)
    closest_levels(a, b)


def test_demo_backend_onnxruntime_writes_the_pytorch_image(exported, tmp_path):
    lr = tmp_path / 'lr.png'
    Image.fromarray(photo(21, 18)).save(lr)
    for size in (['--scale', '3.7'], ['--resolution', '50x70']):
        common = ['--input', str(lr), *size, '--tile', '10', '--bsize', '500', '--gpu', 'cpu', '--overwrite']
        (a,) = demo.main([*common, '--model', str(exported.ckpt), '--output', str(tmp_path / 'pt.png')])
        (b,) = demo.main([*common, '--backend', 'onnxruntime', '--model', str(exported.onnx),
                          '--output', str(tmp_path / 'ort.png')])
        closest_levels(np.asarray(Image.open(b)), np.asarray(Image.open(a)))


# ---------------------------------------------------------------- the examples, as written

def run_example(code: str, folder: Path, allowed: set[str]) -> None:
    """Run a documentation example as written, in `folder`, outside the repository; it may import
    only `allowed` top-level modules."""
    imported = {a.name.split('.')[0] for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split('.')[0] for n in ast.walk(ast.parse(code)) if isinstance(n, ast.ImportFrom)}
    assert imported <= allowed, imported - allowed
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    proc = subprocess.run([sys.executable, '-c', code], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr


def examples_render_like_pytorch(onnx_path: Path, pytorch: Upscaler, folder: Path, docs=DOCS) -> None:
    """The README's standalone example (numpy, PIL, onnxruntime) and docs/deploy.md's encode-once
    example (+ onnx), run as written in `folder` on onnx_path as model.onnx, upscale lr.png x4 as
    the `pytorch` Upscaler does (within one level)."""
    lr = photo(11, 14, seed=3)
    expected = pytorch(lr, scale=4)
    for doc in docs:
        work = folder / doc.replace('/', '_')
        work.mkdir()
        text = deploy_section() if doc == 'README.md' else (REPO / doc).read_text()
        (code,) = code_blocks(text)
        shutil.copy(onnx_path, work / 'model.onnx')
        Image.fromarray(lr).save(work / 'lr.png')
        run_example(code, work, {'numpy', 'onnxruntime', 'PIL'} | ({'onnx', 'json'} if doc != 'README.md' else set()))
        closest_levels(np.asarray(Image.open(work / 'lr_x4.png')), expected)


@pytest.mark.parametrize('doc', DOCS)
def test_standalone_examples_run_as_written(exported, tmp_path, doc):
    examples_render_like_pytorch(exported.onnx, Upscaler.load(exported.ckpt, 'cpu'), tmp_path, [doc])


# ---------------------------------------------------------------- refusals, in one line

def test_export_refusals(exported, tmp_path, capsys, monkeypatch):
    shutil.copy(exported.ckpt, tmp_path / 'ckpt.onnx')  # a checkpoint with an .onnx name
    (tmp_path / 'link.onnx').symlink_to(tmp_path / 'ckpt.onnx')
    nodec = tmp_path / 'nodec.pth'
    tiny_checkpoint(nodec, liif_spec(hidden=None))
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    cases = [(['ckpt.onnx', 'ckpt.onnx'], 'is the checkpoint itself'),
             (['ckpt.onnx', 'link.onnx'], 'is the checkpoint itself'),
             ([str(exported.ckpt), 'model.pth'], 'ending in .onnx'),
             ([str(exported.ckpt), 'no/such/folder/m.onnx'], 'folder does not exist'),
             (['none.pth', 'm.onnx'], 'not found'),
             (['nodec.pth', 'm.onnx'], 'no decoder'),
             ([str(exported.ckpt)], 'required'),
             ([str(exported.ckpt), 'm.onnx', '--bogus'], 'unrecognized')]
    monkeypatch.chdir(tmp_path)
    for argv, expect in cases:
        monkeypatch.setattr(sys, 'argv', ['export_onnx.py', *argv])
        assert expect in one_line_error(export_script.main, capsys), argv
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before  # nothing written or touched


def test_backend_refuses_what_it_cannot_run(exported, tmp_path, capsys):
    good = exported.onnx.read_bytes()
    proto = onnx.load(str(exported.onnx))

    def with_meta(text: str) -> bytes:
        p = onnx.ModelProto()
        p.CopyFrom(proto)
        del p.metadata_props[:]
        if text is not None:
            onnx.helper.set_model_props(p, {META_KEY: text})
        return p.SerializeToString()

    meta = json.loads({p.key: p.value for p in proto.metadata_props}[META_KEY])
    files = {'empty.onnx': (b'', 'not an ONNX model file'),
             'junk.onnx': (bytes(range(256)) * 8, 'not an ONNX model file'),
             'ckpt.onnx': (exported.ckpt.read_bytes(), 'a PyTorch checkpoint'),
             'cut.onnx': (good[:len(good) // 2], 'not an ONNX model file'),
             'plain.onnx': (with_meta(None), "without this project's metadata"),
             'nojson.onnx': (with_meta('{'), 'not JSON'),
             'format.onnx': (with_meta(json.dumps({**meta, 'format': 99})), 'format 99'),
             'stage.onnx': (with_meta(json.dumps({**meta, 'stages': {**meta['stages'], 'query': {
                 'inputs': ['tabel', 'coord', 'cell'], 'outputs': ['rgb']}}})), "no tensor 'tabel'"),
             'radius.onnx': (with_meta(json.dumps({**meta, 'receptive_radius': -1})), 'receptive_radius')}
    for name, (data, expect) in files.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(UserError, match=re.escape(expect)) as e:
            Upscaler.load(tmp_path / name, backend='onnxruntime')
        assert '\n' not in str(e.value) and name in str(e.value)
    for kw, expect in [({'checkpoint': None}, 'needs --model'), ({'precision': 'bf16'}, 'fp32'),
                       ({'device': '0'}, 'runs on the CPU'), ({'backend': 'tensorrt'}, 'backend must be')]:
        args = {'checkpoint': exported.onnx, 'backend': 'onnxruntime', **kw}
        with pytest.raises(UserError, match=expect):
            Upscaler.load(**args)
    lr = tmp_path / 'lr.png'
    Image.fromarray(photo(8, 8)).save(lr)
    err = one_line_error(lambda: demo.main(['--input', str(lr), '--scale', '2', '--backend', 'onnxruntime',
                                            '--model', str(tmp_path / 'ckpt.onnx')]), capsys)
    assert 'PyTorch checkpoint' in err and not (tmp_path / 'lr_x2.png').exists()
