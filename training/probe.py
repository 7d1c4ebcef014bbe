"""A dry run before the run folder is made (docs/design.md §4): the built model is checked, and one
training sample and one validation sample are drawn and run through it, so that a config whose
values pass the schema but cannot work (a crop larger than the images, a border wider than the
validation crops, a width of 0, a model that cannot take the data) is one line naming the key and
the file, and nothing is written. Every random generator is left as it was, and so are the weights:
the run draws exactly what it would have drawn without the probe."""
from typing import Optional, Sequence

import torch
import torch.nn as nn
from torch.utils.data import Dataset, default_collate

from inference.evaluate import evaluate
from inference.norm import DataNorm
from models.loading import require_implicit
from utils.errors import UserError
from utils.precision import autocast

from .config import val_sets as val_sets_of
from .state import forked_rng
from .step_memory import check_step_memory

# Queries of the training sample sent through the model: enough to exercise every layer.
PROBE_QUERIES = 64


def _reason(e: BaseException) -> str:
    """'Type: message' of an exception, on one line."""
    msg = ' '.join(str(e).split())
    return f'{type(e).__name__}: {msg}' if msg else type(e).__name__


def check_model(model: nn.Module, config: dict, where: str) -> None:
    """The model of the config can be trained: an implicit image function without empty
    parameters (a width of 0 somewhere in model.args)."""
    require_implicit(model, config['model']['name'], where)
    for name, p in model.named_parameters():
        if p.numel() == 0:
            raise UserError(f'{where}: model.args: parameter {name} has no elements (shape '
                            f'{tuple(p.shape)}); every width must be at least 1')


def first_batch(dataset: Dataset, key: str, where: str, batch_size: int = 1) -> dict:
    """Item 0 of a wrapped dataset as a batch of one, after the wrapper checked every item's size
    from the headers (check_items: a late image too small for the crop would otherwise stop the
    run after its folder exists) and, for batches of several items, that they have one size
    (varying_sizes); failures name the config key."""
    try:
        if hasattr(dataset, 'check_items'):
            dataset.check_items()
        varying = dataset.varying_sizes() if batch_size > 1 and hasattr(dataset, 'varying_sizes') else None
        if varying:
            raise UserError(f'batch_size {batch_size} needs items of one size, but without an inp_size crop '
                            f'{varying}; use {key}.batch_size 1 or set {key}.wrapper.args.inp_size')
        return default_collate([dataset[0]])
    except UserError as e:
        raise UserError(f'{where}: {key}: {e}') from None
    except Exception as e:  # a wrapper's arithmetic on a bad value fails in many ways
        raise UserError(f'{where}: {key}.wrapper: cannot make a sample ({_reason(e)})') from None


@torch.no_grad()
def forward_once(model: nn.Module, batch: dict, norm: DataNorm, device: torch.device, precision: str,
                 where: str) -> None:
    """The model on the first PROBE_QUERIES queries of a training batch, in eval mode."""
    inp = norm.inp(batch['inp'].to(device))  # (1, 3, h, w)
    coord = batch['coord'][:, :PROBE_QUERIES].to(device)  # (1, Q, 2)
    cell = batch['cell'][:, :PROBE_QUERIES].to(device)
    try:
        with autocast(device, precision):
            pred = model(inp, coord, cell)
    except UserError as e:
        raise UserError(f'{where}: model: {e}') from None
    except Exception as e:
        raise UserError(f'{where}: model: fails on a training sample ({_reason(e)})') from None
    want = (1, coord.shape[1], 3)
    if tuple(pred.shape) != want:
        raise UserError(f'{where}: model: predicts shape {tuple(pred.shape)} for {coord.shape[1]} queries, '
                        f'expected {want}')


def validate_once(model: nn.Module, batch: dict, norm: DataNorm, config: dict, device: torch.device,
                  where: str, key: str = 'val_dataset', eval_type: Optional[str] = None) -> None:
    """Training's validation (inference.evaluate) on one validation sample of the set at config
    `key`, under eval_type."""
    try:
        evaluate(model, [batch], norm, eval_type, config['eval_bsize'], device,
                 config['precision'], progress=False, desc='val', with_ssim=False, key=key,
                 attention_rows=config['attention_rows'])
    except UserError as e:
        what = f'eval_type {eval_type} on {key}' if eval_type else key
        raise UserError(f'{where}: {what}: {e}') from None


def probe(model: nn.Module, train_set: Dataset, val_sets: Sequence[tuple[str, Dataset, Optional[str]]],
          norm: DataNorm, config: dict, where: str, device: torch.device) -> None:
    """Check the model, draw item 0 of each dataset (val_sets: (config key, dataset, eval_type))
    and run it through the model as training and validation will, and check that a training step
    fits this machine (training/step_memory.py); any failure is a UserError naming the config key
    and `where`."""
    check_model(model, config, where)
    was_training = model.training
    model.eval()
    try:
        with forked_rng(config['seed']):
            batch_size = config['train_dataset']['batch_size']
            sample = first_batch(train_set, 'train_dataset', where, batch_size)
            forward_once(model, sample, norm, device, config['precision'], where)
            check_step_memory(model, sample, norm, device, config['precision'], batch_size, len(train_set), where)
            val_sizes = [spec['batch_size'] for _, spec, _ in val_sets_of(config)]
            for (key, val_set, eval_type), size in zip(val_sets, val_sizes):
                validate_once(model, first_batch(val_set, key, where, size), norm, config, device, where, key,
                              eval_type)
    finally:
        model.train(was_training)
