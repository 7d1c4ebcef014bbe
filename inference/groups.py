"""Models whose output at a query depends on the other queries of its call (docs/design.md §5.1):
which queries share a call. Two kinds say so:

- models whose queries attend to each other (SRNO, HIIF) define `query_context(chunks)`
  (models/galerkin.py); evaluation and rendering group the queries of an output grid
  deliberately, by `attention_rows` (below);
- models that render the whole output grid at once (LMF with CMSR, whose levels are grids: the
  attribute `whole_grid_queries`) get the whole grid in one call, whatever `attention_rows` and
  `bsize` say; such a model bounds its own memory.

For the attention models, `attention_rows`:

- N: the grid in blocks of N rows, each block one call: the authors' chunked test-time prediction
  (their `eval_bsize`, which counts rows for these models);
- None (`whole`): every query of the image in one group, as SRNO's test protocol and demo call it.

Whatever its size, a group is computed `bsize` queries at a time: a group that fits in one chunk is
one call (exactly the authors' call); a larger one goes through query_context (the attention's
sums over all its chunks first, then each chunk queried with them), which equals one call up to
float rounding with memory bounded by one chunk. Models whose queries are independent ignore the
grouping.
"""
from typing import Any, Optional

import torch
import torch.nn as nn
from torch import Tensor

from utils.errors import UserError

WHOLE = 'whole'


def attends(model: nn.Module) -> bool:
    """Whether the model's queries attend to each other (it defines query_context)."""
    return callable(getattr(model, 'query_context', None))


def whole_grid(model: nn.Module) -> bool:
    """Whether the model asks for the whole output grid in one call (its attribute
    `whole_grid_queries`, true while LMF renders with CMSR)."""
    return bool(getattr(model, 'whole_grid_queries', False))


def couples_queries(model: nn.Module) -> bool:
    """Whether a query's output depends on the others of its call (attends or whole_grid)."""
    return attends(model) or whole_grid(model)


def group_rows(model: nn.Module, rows: Optional[int]) -> Optional[int]:
    """The rows (or, for point sets, queries) per group actually used: `rows` for a model that
    attends, None (everything in one group) otherwise."""
    return rows if attends(model) else None


def check_attention_rows(value: Any, where: str = 'attention_rows') -> Optional[int]:
    """value if it is a positive integer (rows per group) or None (the whole image); otherwise a
    UserError naming `where`."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    raise UserError(f"{where} must be a positive number of output rows or absent (the whole image), got {value!r}")


def parse_attention_rows(text: Optional[str], flag: str = '--attention-rows') -> Optional[int]:
    """A command-line value: 'whole' (or None) -> None, a positive integer -> it."""
    if text is None or str(text).strip().lower() == WHOLE:
        return None
    try:
        rows = int(str(text).strip())
    except ValueError:
        rows = 0
    if rows < 1:
        raise UserError(f"{flag} expects '{WHOLE}' or a positive number of output rows, got {text!r}")
    return rows


def group_note(model: nn.Module, rows: Optional[int]) -> Optional[str]:
    """A note when attention_rows is given for a model whose queries are independent (it changes nothing)."""
    if rows is not None and not attends(model):
        return f'attention rows ({rows}) apply only to models whose queries attend to each other (SRNO, HIIF); ignored'
    return None


def query_group(model: nn.Module, coord: Tensor, cell: Tensor, bsize: int) -> Tensor:
    """coord, cell (B, Q, 2), queries that attend together -> rgb (B, Q, 3), bsize queries at a
    time (one call when they fit in one, or when the model renders whole grids)."""
    n = coord.shape[1]
    spans = [(i, min(i + bsize, n)) for i in range(0, n, bsize)]
    if len(spans) == 1 or whole_grid(model):
        return model.query_rgb(coord, cell)
    context = model.query_context(lambda: ((coord[:, a:b], cell[:, a:b]) for a, b in spans))
    return torch.cat([model.query_rgb(coord[:, a:b], cell[:, a:b], context=context) for a, b in spans], dim=1)
