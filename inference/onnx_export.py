"""ONNX export of an implicit model (docs/design.md §11): one file whose graph is the model itself,

    image (1, 3, h, w) float32 in [0, 1], coord (1, Q, 2), cell (1, Q, 2)  ->  rgb (1, Q, 3) in [0, 1]

for any h, w and Q (coordinates and cells in the project's conventions, docs/design.md §1), the
model's normalisation inside, the prediction de-normalised and clamped; for SRNO and HIIF the Q
queries of a run attend to each other, as in one call of the model. It is made of graphs exported
from the same model the PyTorch path runs (inference/onnx_stages.py: encode, prepare, a context
stage per attention block, query), joined at named tensors, so that a runtime can encode once and
query in chunks by cutting it there (the ONNX Runtime backend does, inference/onnx_backend.py).

The metadata (key 'liif', JSON) names each stage's inputs and outputs, the number of attention
blocks, the encoder's receptive radius (tiled encoding) and window (mirror padding), the model and
its normalisation. Exporter: torch.onnx.export with dynamo=True at the pinned torch's default
opset, no custom operators.
"""
import contextlib
import inspect
import io
import json
import warnings
from typing import Any, Optional, Sequence

import numpy as np
import onnx
import onnx.compose
import torch
import torch.nn as nn
from torch import Tensor
from torch.export import Dim

from utils.coords import make_cell, make_coord
from utils.errors import UserError
from utils.files import PathLike, atomic_write

from .groups import couples_queries
from .norm import DataNorm
from .onnx_format import DYNAMIC_AXES, FORMAT, META_KEY, OUTPUT
from .onnx_stages import StageSpec, check_exportable, plan_stages
from .tiling import receptive_radius
from .window import model_window

# The largest difference from the PyTorch model an exported file may show on the check sample.
TOLERANCE = 1e-4
ONNX_LIMIT = 2 ** 31 - 1  # bytes: a protobuf message (the whole file, weights embedded) is at most this


def sample_inputs(in_hw: Sequence[int] = (13, 17), n_query: int = 257, scale: float = 3.7,
                  seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """A check sample: image (1, 3, h, w) in [0, 1], coord (1, Q, 2) (random points and the corners
    of the grid of `scale`), cell (1, Q, 2) of that output size. Sides not multiples of a window."""
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(1, 3, *in_hw, generator=g)
    out_hw = [round(n * scale) for n in in_hw]
    grid = make_coord(out_hw)
    corners = grid[[0, out_hw[1] - 1, -out_hw[1], -1]]
    coord = torch.cat([torch.rand(n_query - 4, 2, generator=g) * 2 - 1, corners]).unsqueeze(0)
    return image, coord, make_cell(out_hw, coord)


def sample_sizes(window: Optional[int]) -> list[tuple[int, int]]:
    """Input sizes to export and check on: sides that are not multiples of the window (8 for
    encoders without one), odd and even, one square multiple."""
    n = window or 8
    return [(n + 5, 2 * n + 1), (n + 1, n + 6), (2 * n, 2 * n)]


def _summary(error: BaseException) -> str:
    """One line of an exporter's error: the line after its 'Exception summary', else its first."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for i, line in enumerate(lines[:-1]):
        if 'Exception summary' in line:
            return lines[i + 1]
    return lines[0] if lines else type(error).__name__


def _to_proto(name: str, spec: StageSpec) -> onnx.ModelProto:
    """torch.onnx.export (dynamo, the default opset) of the stage `spec` on its example arguments,
    every axis of DYNAMIC_AXES dynamic -> the ONNX model, its progress messages and warnings
    silenced; a failure is a UserError naming the stage. The exporter's own graph optimizer is off:
    onnxscript 0.7's rewriter takes `x + 1e-9` for `x + 0` and drops it (the area floor of the
    ensemble weights, docs/design.md §2.1, whose 0/0 then made NaNs); the runtime optimises the
    graph itself when it loads it."""
    dynamic = _dynamic(spec.inputs)
    params = inspect.signature(spec.module.forward).parameters.values()
    if any(p.kind == p.VAR_POSITIONAL for p in params):  # forward(*args): one entry for all of them
        dynamic = {'args': dynamic}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
        warnings.simplefilter('ignore')
        try:
            program = torch.onnx.export(spec.module, spec.args, input_names=list(spec.inputs),
                                        output_names=list(spec.outputs), dynamic_shapes=dynamic, dynamo=True,
                                        optimize=False, verbose=False)
        except Exception as e:  # torch.export's and the translator's errors, many lines each
            raise UserError(f'torch.onnx.export failed on the {name} stage: {_summary(e)}') from None
    return program.model_proto


def _used_inputs(proto: onnx.ModelProto) -> list[str]:
    """The graph inputs that some node reads (an exported stage may declare one it does not)."""
    read = {name for node in proto.graph.node for name in node.input}
    read |= {o.name for o in proto.graph.output}
    return [i.name for i in proto.graph.input if i.name in read]


def _drop_unused_inputs(proto: onnx.ModelProto) -> onnx.ModelProto:
    """proto without the graph inputs no node reads, except coord and cell: the contract's inputs
    stay, even when a model does not read one (LIIF without cell decoding ignores the cell)."""
    keep = set(_used_inputs(proto)) | {'coord', 'cell'}
    kept = [i for i in proto.graph.input if i.name in keep]
    del proto.graph.input[:]
    proto.graph.input.extend(kept)
    return proto


def _dynamic(names: Sequence[str]) -> tuple:
    """torch.export's dynamic_shapes for inputs `names` (in order): their DYNAMIC_AXES as
    Dim.DYNAMIC (named Dims trip over SwinIR's padding in this torch; the names are set after)."""
    return tuple({axis: Dim.DYNAMIC for axis in DYNAMIC_AXES.get(n, {})} or None for n in names)


def _name_dims(proto: onnx.ModelProto) -> onnx.ModelProto:
    """proto with its inputs' and outputs' dynamic axes named as DYNAMIC_AXES says (h, w, Q, ...)
    and without the intermediate shapes (each stage numbers its symbols from s0: once joined they
    would seem to be the same; runtimes infer the shapes again)."""
    for value in (*proto.graph.input, *proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        for axis, name in DYNAMIC_AXES.get(value.name, {}).items():
            dims[axis].dim_param = name
    del proto.graph.value_info[:]
    return proto


def export_stages(model: nn.Module, norm: DataNorm, image: Tensor) -> tuple[dict[str, onnx.ModelProto], list[str]]:
    """The stage graphs of model (inference/onnx_stages.py), in order, for inputs like `image`, and
    the names of its query state's tensors (the query's inputs besides coord, cell and the means)."""
    _, coord, cell = sample_inputs(image.shape[-2:], n_query=37)
    plan, names = plan_stages(model, norm, image, coord, cell)
    return {name: _name_dims(_drop_unused_inputs(_to_proto(name, spec))) for name, spec in plan.items()}, names


def compose(stages: dict[str, onnx.ModelProto]) -> onnx.ModelProto:
    """One model from the stage graphs (in order), each one's internal names prefixed with its
    stage ('encode/...'), joined where one stage's output is a later one's input. Graph inputs:
    every stage input no earlier stage makes, once; output: the last stage's."""
    opsets: dict[str, int] = {}
    for proto in stages.values():
        for op in proto.opset_import:
            if opsets.setdefault(op.domain, op.version) != op.version:
                raise ValueError(f'the stages import opset {op.domain!r} at versions {opsets[op.domain]} and {op.version}')
    graph = onnx.GraphProto(name='liif')
    made, given = set(), set()
    for name, proto in stages.items():
        g = onnx.compose.add_prefix_graph(proto.graph, f'{name}/', rename_inputs=False, rename_outputs=False)
        for i in g.input:
            if i.name not in made and i.name not in given:
                graph.input.append(i)
                given.add(i.name)
        graph.node.extend(g.node)
        graph.initializer.extend(g.initializer)
        graph.sparse_initializer.extend(g.sparse_initializer)
        graph.value_info.extend(g.value_info)
        last = list(g.output)
        graph.value_info.extend(last)
        made |= {o.name for o in last}
    graph.output.extend(last)
    out = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid(d, v) for d, v in opsets.items()],
                                 producer_name='liif scripts/export_onnx.py')
    out.ir_version = max(p.ir_version for p in stages.values())
    for proto in stages.values():
        out.functions.extend(proto.functions)
    return out


def stage_io(stages: dict[str, onnx.ModelProto]) -> dict[str, dict[str, list[str]]]:
    """{stage: {'inputs': [...], 'outputs': [...]}} from the stage graphs."""
    return {k: {'inputs': [i.name for i in p.graph.input], 'outputs': [o.name for o in p.graph.output]}
            for k, p in stages.items()}


def export_onnx(model: nn.Module, norm: DataNorm, name: str = 'model', source: str = '') -> onnx.ModelProto:
    """The ONNX model of `model` (an implicit model on the CPU; put in eval mode) with normalisation
    `norm`: the composed graph and its metadata. The model's name and `source` (e.g. the
    checkpoint's file name) are recorded. UserError when the model cannot be exported."""
    check_exportable(model, source or name)
    model = model.eval()
    try:
        radius: Optional[int] = receptive_radius(model.encoder)
    except ValueError:
        radius = None  # attention: encoded whole, never tiled
    image, _, _ = sample_inputs(sample_sizes(model_window(model))[0])
    stages, names = export_stages(model, norm, image)
    proto = compose(stages)
    if proto.ByteSize() > ONNX_LIMIT:
        raise UserError(f'{source or name}: the model is {proto.ByteSize() / 2 ** 30:.1f} GiB, over the 2 GiB '
                        'an ONNX file with its weights inside can hold')
    blocks = len(model.attention_blocks()) if couples_queries(model) else 0
    meta = {'format': FORMAT, 'model': name, 'source': source, 'stages': stage_io(stages), 'state': names,
            'attention_blocks': blocks,
            'receptive_radius': radius, 'window_size': model_window(model),
            'out_dim': int(getattr(model.encoder, 'out_dim', 0)) or None, 'data_norm': norm.to_config(),
            'exporter': f'torch {torch.__version__.split("+")[0]} torch.onnx.export(dynamo=True)',
            'opset': {d or 'ai.onnx': v for d, v in ((o.domain, o.version) for o in proto.opset_import)}}
    onnx.helper.set_model_props(proto, {META_KEY: json.dumps(meta)})
    onnx.checker.check_model(proto)
    return proto


def check_samples(model: nn.Module) -> list[tuple[Tensor, Tensor, Tensor]]:
    """(image, coord, cell) samples to compare the export with the model on: sample_sizes at the
    scales 3.7, 2.3 and 4 (window: as the model's encoder's), and without a window a 1-row input."""
    sizes = sample_sizes(model_window(model))
    samples = [sample_inputs(hw, scale=s, seed=i) for i, (hw, s) in enumerate(zip(sizes, (3.7, 2.3, 4.0)))]
    if model_window(model) is None:
        # A 1-row input queried on its latent centres' row: every ensemble area is its 1e-9 floor.
        image, coord, cell = sample_inputs((1, 11), scale=2.5, seed=3)
        coord[0, :20, 0] = 0.0
        samples.append((image, coord, cell))
    return samples


def max_difference(proto: onnx.ModelProto, model: nn.Module, norm: DataNorm,
                   samples: Sequence[tuple[Tensor, Tensor, Tensor]]) -> float:
    """The largest |rgb| difference between the ONNX graph run by onnxruntime alone and the
    PyTorch model (its default path, de-normalised and clamped; one call, so that SRNO's and HIIF's
    queries attend together in both) on (image, coord, cell) samples."""
    import onnxruntime as ort  # third-party: imported where a graph is run, not by the export alone
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=['CPUExecutionProvider'])
    worst = 0.0
    for image, coord, cell in samples:
        got = session.run([OUTPUT], {'image': image.numpy(), 'coord': coord.numpy(), 'cell': cell.numpy()})[0]
        with torch.no_grad():
            want = norm.pred_to_rgb(model(norm.inp(image), coord, cell)).numpy()
        worst = max(worst, float(np.abs(got - want).max()))
    return worst


def save_onnx(proto: onnx.ModelProto, path: PathLike) -> int:
    """Write proto to path atomically (utils/files.py); returns its size in bytes."""
    data = proto.SerializeToString()
    atomic_write(path, lambda f: f.write(data))
    return len(data)
