"""Rendering: encode once, query the decoder in chunks. Shared by test.py and demo.py."""
import torch
import torch.nn as nn
from torch import Tensor


@torch.no_grad()
def batched_predict(model: nn.Module, inp: Tensor, coord: Tensor, cell: Tensor, bsize: int) -> Tensor:
    """inp (B, 3, h, w), coord and cell (B, Q, 2) -> pred (B, Q, 3), querying `bsize` coords at a
    time after one encoder pass."""
    model.gen_feat(inp)
    preds = [model.query_rgb(coord[:, i:i + bsize], cell[:, i:i + bsize])
             for i in range(0, coord.shape[1], bsize)]
    return torch.cat(preds, dim=1)
