"""What a training checkpoint holds beyond the weights, as plain types (loadable with
`weights_only=True`): random-number states, scheduler state, and the derived seeds.

A training checkpoint is the released format plus resume state:
{'model': {name, args, sd}, 'optimizer': {name, args, sd}, 'epoch': completed epochs,
 'scheduler': the schedule's state (training/schedule.py) or None, 'scaler': GradScaler state or None,
 'best_val': best validation PSNR so far (-inf: none yet), 'rng': one rng_state() per rank,
 'config': the run's config, 'data_norm': the normalisation the model needs (DataNorm.to_config),
 'ema': EMA state or None, 'best_val_ema': its best validation PSNR, 'init': init_record() of the
 checkpoint a fine-tuned run started from, or None}.
"""
import contextlib
import copy
import math
import random
from collections import Counter
from typing import Iterator, Optional

import numpy as np
import torch
import torch.nn as nn

from datasets.seeding import derive_seed, seed_all
from inference.norm import DataNorm
from utils.checkpoints import check_finite, file_digest, load_state_dict_strict
from utils.config import value_differences
from utils.errors import UserError

from .config import OPTIMIZERS

RANK_STREAM = 2  # derive_seed key of each rank's global generators (its augmentation draws)


def rng_state() -> dict:
    """The states of Python's random, numpy's global generator, torch (CPU and every CUDA device),
    as plain lists, ints and uint8 tensors."""
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    return {
        'python': [version, list(internal), gauss],
        'numpy': {'key': torch.from_numpy(np_state['state']['key'].astype(np.int64)),
                  'pos': int(np_state['state']['pos']),
                  'has_gauss': int(np_state['has_gauss']), 'gauss': float(np_state['gauss'])},
        'torch': torch.get_rng_state(),
        'cuda': torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    """Restore what rng_state() captured (CUDA states only when the device count matches)."""
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state({'bit_generator': 'MT19937',
                         'state': {'key': state['numpy']['key'].numpy().astype(np.uint32),
                                   'pos': state['numpy']['pos']},
                         'has_gauss': state['numpy']['has_gauss'], 'gauss': state['numpy']['gauss']})
    torch.set_rng_state(state['torch'])
    if state['cuda'] and torch.cuda.is_available() and len(state['cuda']) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state['cuda'])


@contextlib.contextmanager
def forked_rng(seed: int) -> Iterator[None]:
    """Run a block with every global generator seeded by `seed`, then put the previous states
    back: validation draws the same crops every epoch and leaves training's stream untouched."""
    saved = rng_state()
    seed_all(seed)
    try:
        yield
    finally:
        set_rng_state(saved)


def scheduler_state(scheduler: Optional[torch.optim.lr_scheduler.LRScheduler]) -> Optional[dict]:
    """scheduler.state_dict() with MultiStepLR's Counter of milestones as a plain dict."""
    if scheduler is None:
        return None
    sd = copy.deepcopy(scheduler.state_dict())
    if isinstance(sd.get('milestones'), Counter):
        sd['milestones'] = dict(sd['milestones'])
    return sd


def load_scheduler_state(scheduler: torch.optim.lr_scheduler.LRScheduler, sd: dict) -> None:
    """The inverse of scheduler_state: the scheduler continues where it stopped (no replay)."""
    sd = dict(sd)
    if isinstance(sd.get('milestones'), dict):
        sd['milestones'] = Counter(sd['milestones'])
    scheduler.load_state_dict(sd)


def parameters_finite(model: nn.Module) -> bool:
    """True when every parameter of model is finite (checked before a checkpoint is written)."""
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def make_checkpoint(model: nn.Module, config: dict, optimizer: torch.optim.Optimizer,
                    scheduler, scaler, epoch: int, best_val: float, rng: list, ema: Optional[dict] = None,
                    best_val_ema: float = -math.inf, init: Optional[dict] = None) -> dict:
    """The checkpoint dict of an unwrapped model after `epoch` completed epochs (see module doc);
    `ema` is EMA.state_dict() when the run averages its weights, `init` where a fine-tuned run's
    weights came from ({'path', 'digest', 'epoch'})."""
    return {
        'model': {'name': config['model']['name'], 'args': copy.deepcopy(config['model'].get('args') or {}),
                  'sd': model.state_dict()},
        'optimizer': {'name': config['optimizer']['name'], 'args': copy.deepcopy(config['optimizer']['args']),
                      'sd': optimizer.state_dict()},
        'epoch': epoch,
        'scheduler': scheduler_state(scheduler),
        'scaler': scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        'best_val': best_val,
        'rng': rng,
        'config': copy.deepcopy(config),
        'data_norm': DataNorm.from_config(config['data_norm']).to_config(),  # how to use the model
        'ema': ema, 'best_val_ema': best_val_ema, 'init': init,
    }


def model_checkpoint(config: dict, sd: dict, epoch: int, **extra) -> dict:
    """A model-only checkpoint (the release format, as scripts/export_model.py writes) of weights
    `sd` for the config's model: what test.py and demo.py load (e.g. ema-best.pth)."""
    return {'model': {'name': config['model']['name'], 'args': copy.deepcopy(config['model'].get('args') or {}),
                      'sd': sd},
            'epoch': epoch, 'data_norm': DataNorm.from_config(config['data_norm']).to_config(),
            'config': copy.deepcopy(config), **extra}


def init_record(path, ckpt: dict) -> dict:
    """Where a fine-tuned run's weights came from: {'path', 'digest' (file_digest), 'epoch'}."""
    epoch = ckpt.get('epoch')
    return {'path': str(path), 'digest': file_digest(path),
            'epoch': epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None}


def require_training_state(ckpt: dict, where) -> None:
    """A UserError unless ckpt holds a run's training state (optimizer state and epoch count): a
    model-only checkpoint (a release, an export) starts a new run with --init instead."""
    opt, epoch = ckpt.get('optimizer'), ckpt.get('epoch')
    if not (isinstance(opt, dict) and isinstance(opt.get('name'), str) and isinstance(opt.get('sd'), dict)) \
            or not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise UserError(f'{where} holds a model without its training state (no optimizer state or epoch), so '
                        f'there is no run to resume: to train from its weights, use --init {where} --config CONFIG')


def check_resumable(ckpt: dict, where, epoch_max: int) -> dict:
    """ckpt, or a UserError saying why training cannot continue from it: no training state
    (require_training_state), weights that hold NaN or inf, or no epoch left before epoch_max."""
    require_training_state(ckpt, where)
    check_finite(ckpt['model']['sd'], where)
    if ckpt['epoch'] >= epoch_max:
        raise UserError(f'nothing to train: {where} is at epoch {ckpt["epoch"]} and epoch_max is {epoch_max}; '
                        'to continue, raise epoch_max (give --config with a larger epoch_max)')
    return ckpt


def init_weights(model: nn.Module, ckpt: dict, where, config: dict) -> str:
    """Load a checkpoint's model weights into a new run's model (strictly: same module tree);
    returns a note for the log. The optimizer, schedule and epoch start afresh."""
    if ckpt['model']['name'] != config['model']['name']:
        raise UserError(f"--init {where}: its model is {ckpt['model']['name']!r}, the config's is "
                        f"{config['model']['name']!r}")
    check_finite(ckpt['model']['sd'], where)
    try:
        load_state_dict_strict(model, ckpt['model']['sd'], what=f'--init {where}')
    except UserError as e:
        diffs = value_differences(ckpt['model'].get('args') or {}, config['model'].get('args') or {})
        if not diffs:
            raise
        shown = '; '.join(f'{k} {a} vs {b}' for k, a, b in diffs[:4]) + (f' (+{len(diffs) - 4} more)' if len(diffs) > 4 else '')
        raise UserError(f"--init {where}: its model differs from the config's (model.args, checkpoint vs config: "
                        f'{shown}); {str(e).split(": ", 1)[-1]}') from None
    epoch = ckpt.get('epoch')
    return (f'initialised from {where} (sha256 {file_digest(where)}'
            + (f', epoch {epoch} of its run)' if isinstance(epoch, int) else ')'))


def restore(ckpt: dict, where, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler, scaler,
            env) -> tuple[int, float, Optional[str]]:
    """Load a checkpoint's training state into a fresh run: returns (completed epochs, best val,
    a note or None). The scheduler's state is loaded, never replayed; this rank's random state
    is restored when the checkpoint has one per rank of this run. Every part is checked here,
    before the run folder and the first step: a hostile or damaged state (a best_val that is no
    number, optimizer or scheduler state that does not fit, a random state that cannot be set)
    is a UserError naming the part."""
    load_state_dict_strict(model, ckpt['model']['sd'], what=str(where))
    if type(optimizer) is not OPTIMIZERS.get(ckpt['optimizer']['name']):
        raise UserError(f"{where}: was trained with {ckpt['optimizer']['name']!r}, this run's config "
                        f'asks for {type(optimizer).__name__}')
    best_val = ckpt.get('best_val', -math.inf)
    if isinstance(best_val, bool) or not isinstance(best_val, (int, float)) or math.isnan(best_val):
        raise UserError(f'{where}: best_val: expected a number (-inf before any validation), got {best_val!r}')
    wanted = _schedule(optimizer, scheduler)  # the config's, before the checkpoint's replaces it
    try:
        optimizer.load_state_dict(ckpt['optimizer']['sd'])
        check_optimizer_state(optimizer)
    except Exception as e:  # noqa: BLE001  (a damaged state fails inside torch in many ways)
        raise UserError(f"{where}: its {ckpt['optimizer']['name']} optimizer state does not fit this run's "
                        f'optimizer ({_reason(e)})') from None
    saved = ckpt.get('scheduler')
    if scheduler is not None and saved is not None and not (isinstance(saved, dict) and saved):
        raise UserError(f'{where}: its scheduler state is damaged (expected a mapping, got {type(saved).__name__})')
    # A state holding none of this schedule's own keys is another kind of schedule's (multi_step_lr
    # resumed as warmup_cosine_lr): the position then comes from the epoch, as for a release.
    if scheduler is not None and saved and any(k in saved for k in scheduler.args()):
        try:
            load_scheduler_state(scheduler, ckpt['scheduler'])
            check_scheduler_state(scheduler, len(optimizer.param_groups))
        except Exception as e:  # noqa: BLE001
            raise UserError(f'{where}: its scheduler state is damaged ({_reason(e)})') from None
    elif scheduler is not None:  # a released checkpoint, another kind of schedule: position from the epoch
        scheduler.last_epoch = ckpt['epoch']
    notes = [apply_schedule(optimizer, scheduler, wanted, ckpt['epoch'])]
    if scaler.is_enabled() and ckpt.get('scaler'):
        try:
            scaler.load_state_dict(ckpt['scaler'])
        except Exception as e:  # noqa: BLE001
            raise UserError(f'{where}: its grad scaler state is damaged ({_reason(e)})') from None
    rng = ckpt.get('rng') or []
    if not isinstance(rng, list):
        raise UserError(f'{where}: its random state is damaged (expected a list, one per process)')
    if len(rng) == env.world_size:
        saved = rng_state()
        try:
            set_rng_state(rng[env.rank])
        except Exception as e:  # noqa: BLE001
            set_rng_state(saved)
            raise UserError(f'{where}: its random state is damaged ({_reason(e)})') from None
    else:
        seed_all(derive_seed(ckpt.get('config', {}).get('seed', 0), RANK_STREAM, env.rank, ckpt['epoch']))
        notes.append(f'the checkpoint holds random states for {len(rng)} process(es), this run has '
                     f'{env.world_size}: the continuation is reseeded, not bit-identical')
    return ckpt['epoch'], float(best_val), '; '.join(n for n in notes if n) or None


def _reason(e: BaseException) -> str:
    """An exception as one short line: its message, or its type."""
    msg = ' '.join(str(e).split())
    return (msg[:200] + '...' if len(msg) > 200 else msg) or type(e).__name__


def check_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """ValueError unless every per-parameter state tensor (Adam's moments, SGD's momentum) has its
    parameter's shape and every hyperparameter the groups hold is a plain value: torch loads any
    shapes and fails only at the first step."""
    for group in optimizer.param_groups:
        for p in group['params']:
            for key, value in optimizer.state.get(p, {}).items():
                if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != p.shape:
                    raise ValueError(f'state {key!r} of a {tuple(p.shape)} parameter has shape {tuple(value.shape)}')
        for key, value in group.items():
            if key != 'params' and isinstance(value, (dict, list)) and key != 'betas':
                raise ValueError(f'param group entry {key!r} is a {type(value).__name__}')


def check_scheduler_state(scheduler, n_groups: int) -> None:
    """ValueError unless a loaded schedule's state is what its scheduler keeps: for MultiStepLR
    integer milestones and counts and a finite gamma, for the others (training/schedule.py) finite
    numbers or booleans as their args; for every one an integer epoch and one finite rate per
    parameter group."""
    def numbers(values) -> bool:
        return (isinstance(values, list) and len(values) == n_groups
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values))
    if isinstance(scheduler, torch.optim.lr_scheduler.MultiStepLR):
        ms = scheduler.milestones
        if not (isinstance(ms, Counter) and all(isinstance(k, int) and isinstance(v, int) for k, v in ms.items())):
            raise ValueError(f'milestones: expected epochs and counts, got {ms!r:.60}')
        gamma = scheduler.gamma
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not math.isfinite(gamma) or gamma <= 0:
            raise ValueError(f'gamma: expected a positive number, got {gamma!r:.60}')
    else:
        for key, value in scheduler.args().items():
            if not isinstance(value, bool) and not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise ValueError(f'{key}: expected a finite number, got {value!r:.60}')
    if isinstance(scheduler.last_epoch, bool) or not isinstance(scheduler.last_epoch, int):
        raise ValueError(f'last_epoch: expected an integer, got {scheduler.last_epoch!r:.60}')
    for key in ('base_lrs', '_last_lr'):
        if hasattr(scheduler, key) and not numbers(getattr(scheduler, key)):
            raise ValueError(f'{key}: expected {n_groups} finite rate(s), got {getattr(scheduler, key)!r:.60}')


def _schedule(optimizer: torch.optim.Optimizer, scheduler) -> tuple:
    """(each group's hyperparameters with its base rate as 'lr', the scheduler's args or None):
    what decides the learning rate of every epoch."""
    groups = []
    for g in optimizer.param_groups:
        hyper = {k: v for k, v in g.items() if k not in ('params', 'initial_lr')}
        if scheduler is not None:
            hyper['lr'] = g.get('initial_lr')  # the rate before any decay; None if never scheduled
        groups.append(hyper)
    return groups, None if scheduler is None else scheduler.args()


def apply_schedule(optimizer: torch.optim.Optimizer, scheduler, wanted: tuple, epoch: int) -> Optional[str]:
    """After loading a checkpoint's optimizer and scheduler state: if the run's config asks for
    another learning rate, schedule or optimizer setting, the config wins (resuming with a lower
    rate must lower it) and the rate is recomputed for `epoch` completed epochs; returns a note
    saying so. An unchanged schedule is left exactly as loaded (a bit-identical resume)."""
    if _schedule(optimizer, scheduler) == wanted:
        return None
    groups, args = wanted
    if scheduler is not None:
        scheduler.set_args(args)
    for g, hyper in zip(optimizer.param_groups, groups):
        g.update(hyper)
        g['lr'] = hyper['lr'] if scheduler is None else scheduler.lr_at(hyper['lr'], epoch + 1)
        if scheduler is not None:
            g['initial_lr'] = hyper['lr']
    if scheduler is not None:
        scheduler.base_lrs = [hyper['lr'] for hyper in groups]
        scheduler._last_lr = [g['lr'] for g in optimizer.param_groups]
    return (f"the config's optimizer or schedule differs from the checkpoint's: continuing with the "
            f"config's, lr {optimizer.param_groups[0]['lr']:.2e} after epoch {epoch}")
