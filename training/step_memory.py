"""The memory one training step needs, estimated from one sample before the run folder is made
(docs/design.md §4): a batch_size, sample_q or inp_size whose step cannot fit this machine (batch
1000000 of 48x48 crops) is one line naming the keys, instead of a process growing until the
machine kills it. Only small tensors are allocated: the model runs on a few queries of one item."""
from typing import Optional

import torch
import torch.nn as nn

from inference.norm import DataNorm
from utils.errors import UserError
from utils.images import physical_memory
from utils.precision import autocast

# The two query counts the model runs on; the activations kept for backward are linear in between.
FIT_QUERIES = (16, 32)


def saved_bytes(model: nn.Module, inp: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor,
                precision: str) -> int:
    """Bytes of the tensors autograd keeps for the backward pass of model(inp, coord, cell), the
    parameters themselves excluded (they are held once, whatever the batch)."""
    params = {p.data_ptr() for p in model.parameters()}
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        if t.data_ptr() not in params:
            total += t.numel() * t.element_size()
        return t

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with autocast(inp.device, precision):
            model(inp, coord, cell)
    return total


def step_bytes(model: nn.Module, sample: dict, norm: DataNorm, device: torch.device, precision: str,
               items: int) -> int:
    """Estimated bytes of one training step of `items` samples shaped as `sample` (a batch of one):
    their tensors plus the activations kept for backward, measured at two query counts and
    extrapolated linearly to the sample's (the encoder's part is the intercept)."""
    inp = norm.inp(sample['inp'].to(device))  # (1, 3, h, w)
    queries = sample['coord'].shape[1]
    data = sum(v.numel() * v.element_size() for v in sample.values() if isinstance(v, torch.Tensor))
    q1, q2 = (min(q, queries) for q in FIT_QUERIES)
    at = [saved_bytes(model, inp, sample['coord'][:, :q].to(device), sample['cell'][:, :q].to(device), precision)
          for q in (q1, q2)]
    per_query = (at[1] - at[0]) / (q2 - q1) if q2 > q1 else 0.0
    per_item = at[0] + per_query * (queries - q1) + data
    return int(items * per_item)


def check_step_memory(model: nn.Module, sample: dict, norm: DataNorm, device: torch.device, precision: str,
                      batch_size: int, n_items: int, where: str, memory: Optional[int] = None) -> None:
    """Refuse (UserError naming the keys) a training step of min(batch_size, n_items) samples whose
    estimated memory exceeds `memory` (default: this machine's RAM; on a GPU, its memory)."""
    if memory is None:
        memory = (torch.cuda.get_device_properties(device).total_memory if device.type == 'cuda'
                  else physical_memory())
    if memory is None:
        return
    items = min(batch_size, n_items)
    need = step_bytes(model, sample, norm, device, precision, items)
    if need > memory:
        raise UserError(f"{where}: train_dataset: one training step of {items:,} samples with "
                        f"{sample['coord'].shape[1]:,} queries each needs about {need / 2 ** 30:,.1f} GiB "
                        f'(samples and the activations kept for backward), over the {memory / 2 ** 30:.0f} GiB '
                        'of this machine; lower train_dataset.batch_size or wrapper.args.sample_q / inp_size')
