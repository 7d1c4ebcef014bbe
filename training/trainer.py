"""A training run from a checked config: build model, optimizer and data, make the run folder,
run the epochs, validate, save (docs/design.md §4). train_liif.py parses the command line and
calls `train`."""
import math
import os
import time
import warnings
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn as nn

import models
from datasets import spec_inputs
from datasets.seeding import derive_seed, seed_all
from inference.eval_config import with_protocol_scale
from inference.metrics import parse_eval_type
from inference.norm import DataNorm
from models.loading import read_checkpoint
from utils.checkpoints import load_checkpoint, save_checkpoint
from utils.device import parse_gpus, resolve_device
from utils.errors import UserError
from utils.files import WriteError, refuse_inputs
from utils.images import physical_memory
from utils.precision import check_precision

from .config import OPTIMIZERS, val_sets
from .data import EpochLoaders, make_dataset, rank_batch_size
from .distributed import DistEnv, all_gather, barrier
from .ema import EMA
from .loop import train_epoch, weights_digest
from .losses import make_loss
from .probe import probe
from .progress import StepReport, progress_lines
from .schedule import build_scheduler
from .run_folder import RunLog, check_run_folder, claim_run_folder, folder_state, save_config
from .state import (RANK_STREAM, check_resumable, init_record, init_weights, make_checkpoint,
                    model_checkpoint, parameters_finite, restore, rng_state)
from .val_images import panel_count, val_panels
from .validation import ValSet, run_validation, val_text

VAL_EXTRA_STREAM = 3  # derive_seed key of validation sets after the first


class TrainingDiverged(UserError):
    """The loss or the weights became non-finite; the last good checkpoint is kept."""


def last_good(good: Optional[tuple]) -> str:
    """Where to continue from: good is (checkpoint path, epoch) of the latest one this run can
    resume, or None when none was saved."""
    if good is None:
        return 'No checkpoint was saved: start again'
    return f'The last good checkpoint is {good[0]} (epoch {good[1]}): resume from it (--resume {good[0]})'


def default_workers(env: DistEnv) -> int:
    """What the machine has: min(8, CPUs per process on this node)."""
    return max(0, min(8, (os.cpu_count() or 1) // env.local_world_size))


def pick_device(gpu: Optional[str], env: DistEnv) -> tuple[torch.device, list[int]]:
    """(device, DataParallel GPU ids). Under torchrun each process takes cuda:LOCAL_RANK (CPU
    when there is no CUDA or --gpu cpu); GPUs are then chosen with CUDA_VISIBLE_DEVICES."""
    if env.distributed:
        if gpu not in (None, 'auto', 'cpu'):
            raise UserError('--gpu does not combine with torchrun: choose GPUs with CUDA_VISIBLE_DEVICES')
        if gpu == 'cpu' or not torch.cuda.is_available():
            return torch.device('cpu'), []
        return torch.device(f'cuda:{env.local_rank}'), []
    device = resolve_device(gpu)
    return device, parse_gpus(gpu) if device.type == 'cuda' else []


# Bytes per parameter a training holds: fp32 weights, their gradients and Adam's two moments.
TRAIN_BYTES_PER_PARAM = 16


def build_model(config: dict, where: str) -> nn.Module:
    """models.make(config['model']), first built on the meta device (no memory) to count its
    parameters: a model whose training state exceeds this machine's memory (hidden_list
    [100000, 100000]) is refused before anything is allocated. Wrong args are a UserError naming
    the file."""
    try:
        with warnings.catch_warnings():  # a width of 0 is refused as one line (training/probe.py)
            warnings.filterwarnings('ignore', 'Initializing zero-element tensors')
            with torch.device('meta'):
                count = sum(p.numel() for p in models.make(config['model']).parameters())
            memory = physical_memory()
            if memory is not None and count * TRAIN_BYTES_PER_PARAM > memory:
                raise UserError(f'args: {count:,} parameters need {count * TRAIN_BYTES_PER_PARAM / 2 ** 30:,.0f} GiB to '
                                f'train (weights, gradients, optimizer state), over the {memory / 2 ** 30:.0f} GiB '
                                'of this machine')
            return models.make(config['model'])
    except UserError as e:
        raise UserError(f'{where}: model: {e}') from None
    except (TypeError, ValueError, RuntimeError, ZeroDivisionError, OverflowError, IndexError) as e:
        msg = ' '.join(str(e).split()) or type(e).__name__
        raise UserError(f"{where}: model: cannot build {config['model']['name']!r} ({msg})") from None


def build_optimizer(config: dict, model: nn.Module, where: str) -> torch.optim.Optimizer:
    """The config's optimizer over all of model.parameters(), as the paper's code builds it (so
    its released optimizer states load; frozen parameters never get a gradient, so never move)."""
    spec = config['optimizer']
    try:
        return OPTIMIZERS[spec['name']](model.parameters(), **spec['args'])
    except Exception as e:  # noqa: BLE001  (betas: [0.9] fails with an IndexError inside torch)
        msg = ' '.join(str(e).split()) or type(e).__name__
        raise UserError(f"{where}: optimizer.args: not accepted by {spec['name']} ({msg})") from None


def build_training(config: dict, where: str, device: torch.device):
    """(model, optimizer, scheduler or None, grad scaler) from the config, seeded by its seed so
    every rank starts from the same weights."""
    seed_all(config['seed'])
    model = build_model(config, where).to(device)
    optimizer = build_optimizer(config, model, where)
    scheduler = build_scheduler(config, optimizer)
    scaler = torch.amp.GradScaler(device.type, enabled=config['precision'] == 'fp16')
    return model, optimizer, scheduler, scaler


def build_loaders(config: dict, where: str, env: DistEnv, device: torch.device):
    """(train EpochLoaders, [ValSet] (empty without validation), a one-line summary)."""
    workers = config['num_workers'] if config['num_workers'] is not None else default_workers(env)
    pin = device.type == 'cuda'
    train_set = make_dataset(config['train_dataset'], 'train_dataset', where)
    batch = rank_batch_size(config['train_dataset']['batch_size'], env, 'train_dataset')
    train_loaders = EpochLoaders(train_set, batch, env, config['seed'], workers, pin, train=True)
    sets = []
    if config['epoch_val'] is not None:
        several = isinstance(config['val_dataset'], list)
        for i, (name, section, eval_type) in enumerate(val_sets(config)):
            key = f'val_dataset[{i}]' if several else 'val_dataset'
            # A paired wrapper checks every pair against the set's protocol scale.
            section = with_protocol_scale(section, parse_eval_type(eval_type), f'{where}: {key}')
            val_set = make_dataset(section, key, where)
            val_batch = max(1, section['batch_size'] // env.world_size)
            # Set i > 0 draws from its own seed (the first keeps the seed a single set always had).
            seed = config['seed'] if i == 0 else derive_seed(config['seed'], VAL_EXTRA_STREAM, i)
            sets.append(ValSet(name, key, EpochLoaders(val_set, val_batch, env, seed, workers, pin, train=False),
                               eval_type))
    val_items = (', '.join(f'{vs.name} {len(vs.loaders.dataset)}' for vs in sets) if len(sets) > 1
                 else str(len(sets[0].loaders.dataset)) if sets else '0')
    summary = f'train: {len(train_set)} items, {batch} per step and process; val: {val_items} items; {workers} worker(s)'
    return train_loaders, sets, summary


def train(config: dict, save_path: Path, *, where: str = 'config', resume: Optional[str] = None,
          overwrite: bool = False, env: DistEnv = DistEnv(), device: torch.device = torch.device('cpu'),
          gpu_ids: Sequence[int] = (), init: Optional[str] = None) -> dict:
    """Run (or continue, with `resume`) training; with `init` (or the config's `init:`), a new run
    starts from that checkpoint's model weights (fine-tuning), and records where they came from.
    Returns {'epoch', 'train_loss', 'val_psnr', 'val_psnr_ema'} lists for the epochs run here (the
    first validation set's PSNR), and 'best_val'. config must come from check_train_config."""
    save_path, precision = Path(save_path), config['precision']
    check_precision(precision, device)
    if resume and init:
        raise UserError('--resume continues a run and --init starts one from weights: give one of them')
    resume = Path(resume) if resume else None
    ckpt = check_resumable(load_checkpoint(resume), resume, config['epoch_max']) if resume else None
    if ckpt is None:
        init = init or config['init']  # a new run: --init, else the config's init
        config = {**config, 'init': str(init) if init else None}
    elif config['init'] is None:  # a resumed run keeps saying where its weights started
        config = {**config, 'init': (ckpt.get('config') or {}).get('init')}
    init_ckpt = read_checkpoint(init) if ckpt is None and init else None  # ours, or OpenMMLab's format
    last = save_path / 'epoch-last.pth'
    last_epoch = load_checkpoint(last).get('epoch') if ckpt is not None and last.is_file() else None
    # The run folder (written, and moved aside by --overwrite) may neither be nor hold nor lie in
    # a folder of the data, nor hold the --init checkpoint.
    refuse_inputs(save_path, {'--init checkpoint': init, **spec_inputs(config['train_dataset']),
                              **spec_inputs(config['val_dataset'] or {})}, 'run folder', folder=True)
    move_aside = check_run_folder(save_path, resume, ckpt and ckpt['epoch'], last_epoch, overwrite)
    checked = folder_state(save_path)

    # Everything that can fail on a config or data mistake happens before the folder is made.
    model, optimizer, scheduler, scaler = build_training(config, where, device)
    try:
        loss_fn = make_loss(config['loss'])
    except UserError as e:
        raise UserError(f'{where}: loss: {e}') from None
    start_epoch, best_val, best_ema, note, source = 0, -math.inf, -math.inf, None, None
    if ckpt is not None:
        start_epoch, best_val, note = restore(ckpt, resume, model, optimizer, scheduler, scaler, env)
        source = ckpt.get('init')
    else:
        if init_ckpt is not None:
            note = init_weights(model, init_ckpt, init, config)
            source = init_record(init, init_ckpt)
            trained, used = DataNorm.from_checkpoint(init_ckpt, init), DataNorm.from_config(config['data_norm'])
            if trained != used:  # e.g. OpenMMLab's EDSR-LIIF (DIV2K mean, div 1) into a 0.5 / 0.5 config
                note += (f'; note: it was trained with data_norm {trained.describe()}, this config uses '
                         f'{used.describe()} (set the config\'s data_norm to match to fine-tune it)')
        seed_all(derive_seed(config['seed'], RANK_STREAM, env.rank))  # each rank's own draws
    ema = EMA(model, config['ema']) if config['ema'] is not None else None
    if ema is not None and ckpt is not None:
        if ckpt.get('ema') is not None:
            ema.load_state_dict(ckpt['ema'], resume)
            best_ema = float(ckpt.get('best_val_ema', -math.inf))
        else:
            note = (note + '; ' if note else '') + 'the checkpoint has no EMA weights: the average starts here'
    train_loaders, vsets, data_summary = build_loaders(config, where, env, device)
    norm = DataNorm.from_config(config['data_norm'])
    probe(model, train_loaders.dataset, [(vs.key, vs.loaders.dataset, vs.eval_type) for vs in vsets],
          norm, config, where, device)
    panels = panel_count(config, bool(vsets))
    if panels:  # a validation image that cannot be made is a config mistake, found before the folder
        try:
            val_panels(model, vsets[0].loaders.dataset, norm, 1, device, precision, config['attention_rows'])
        except Exception as e:
            why = ' '.join(str(e).split()) or type(e).__name__
            raise UserError(f'{where}: val_images: cannot show {vsets[0].key} as images ({why}); '
                            'set val_images: 0') from None

    barrier()  # every rank has checked the folder before rank 0 changes it
    lock, moved, notes, failed = None, None, [], None
    if env.is_main:
        try:
            lock, moved, notes = claim_run_folder(save_path, move_aside, checked)
            save_config(save_path, config, start_epoch, source=where)
        except UserError as e:
            failed = str(e)
            if lock is not None:
                lock.release()
    failed = all_gather(failed)[0]  # every rank stops when rank 0 could not take the folder
    if failed:
        raise UserError(failed)
    log = RunLog(save_path if env.is_main else None, first_step=start_epoch + 1, lock=lock)
    log(f'run folder: {save_path}')
    for folder_note in notes:
        log(folder_note)
    if moved is not None:
        log(f'moved the previous contents of {save_path} to {moved}')
    if ckpt is not None:
        log(f'resumed from {resume} (epoch {start_epoch})' + (f'; {note}' if note else ''))
    elif note:
        log(note)
    n_params = sum(p.numel() for p in model.parameters())
    extras = ''.join(f', {k} {config[k]}' for k in ('grad_clip', 'ema') if config[k] is not None)
    log(f'model: {config["model"]["name"]}, {n_params / 1e6:.3f}M parameters; device {device}, '
        f'{env.world_size} process(es), precision {precision}{extras}; {data_summary}')

    net = model
    if env.distributed:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == 'cuda' else None)
    elif len(gpu_ids) > 1:
        net = nn.DataParallel(model, device_ids=list(gpu_ids))

    def save(epoch: int, names: list[str], ema_names: Sequence[str] = ()) -> None:
        rng = all_gather(rng_state())
        if not parameters_finite(model):
            raise TrainingDiverged(f'the weights became non-finite in epoch {epoch}; not saved. '
                                   f'{last_good(good)} with a lower learning rate')
        if env.is_main:
            ckpt_out = make_checkpoint(model, config, optimizer, scheduler, scaler, epoch, best_val, rng,
                                       ema=ema.state_dict() if ema else None, best_val_ema=best_ema, init=source)
            for name in names:
                save_checkpoint(ckpt_out, save_path / name)
            for name in ema_names:
                save_checkpoint(model_checkpoint(config, ema.model.state_dict(), epoch, ema={'decay': ema.decay},
                                                 init=source), save_path / name)

    def after_step(report: StepReport):
        def hook(i: int, loss: float, mean: float) -> None:
            if ema is not None:
                ema.update(model)
            report(i, loss, mean)
        return hook

    history = {'epoch': [], 'train_loss': [], 'val_psnr': [], 'val_psnr_ema': [], 'best_val': best_val}
    # The latest checkpoint on disk that this run can continue from: (path, epoch) or None.
    good = (resume, start_epoch) if ckpt is not None else None
    epoch, t_start = start_epoch, time.time()
    lines = progress_lines(env.is_main)
    try:
        if ckpt is None:
            save(0, ['epoch-last.pth'])  # Ctrl-C in epoch 1 still leaves a resumable state
            good = (last, 0)
        for epoch in range(start_epoch + 1, config['epoch_max'] + 1):
            t_epoch = time.time()
            lr = optimizer.param_groups[0]['lr']
            loader = train_loaders(epoch)
            report = StepReport(epoch, config['epoch_max'], len(loader), config['train_dataset']['batch_size'],
                                config['progress_seconds'], config['tensorboard_every'],
                                log.scalar if env.is_main else None, lines, t_epoch - t_start,
                                epoch - 1 - start_epoch, write=lambda text: print(text, flush=True))
            try:
                loss = train_epoch(net, loader, norm, optimizer, scaler, device, precision,
                                   show=env.is_main, desc=f'epoch {epoch}', grad_clip=config['grad_clip'],
                                   loss_fn=loss_fn, after_step=after_step(report))
            except FloatingPointError as e:
                raise TrainingDiverged(f'{e} in epoch {epoch}: stopped before updating the weights. '
                                       f'{last_good(good)} with a lower learning rate, or check the data') from None
            if scheduler is not None:
                scheduler.step()
            msg = f'epoch {epoch}/{config["epoch_max"]}, lr {lr:.2e}, train: loss={loss:.4f}'
            log.scalar('lr', lr, epoch)
            log.scalar('loss', loss, epoch)
            names, ema_names, val, val_ema = ['epoch-last.pth'], ['ema-last.pth'] if ema else [], None, None
            if vsets and epoch % config['epoch_val'] == 0:
                run = lambda m: run_validation(m, vsets, epoch, norm, config['eval_bsize'], device,  # noqa: E731
                                               precision, env.is_main, config['attention_rows'])
                try:
                    vals = run(model)
                    emas = run(ema.model) if ema is not None else None
                except UserError as e:
                    raise TrainingDiverged(f'validation in epoch {epoch}: {e}. {last_good(good)}') from None
                for i, vs in enumerate(vsets):
                    log.scalar('psnr' if i == 0 else f'psnr/{vs.name}', vals[vs.name], epoch)
                    if emas is not None:
                        log.scalar('psnr_ema' if i == 0 else f'psnr_ema/{vs.name}', emas[vs.name], epoch)
                msg += val_text(vals, emas)
                val = vals[vsets[0].name]
                if val > best_val:
                    best_val = val
                    names.append('epoch-best.pth')
                if emas is not None:
                    val_ema = emas[vsets[0].name]
                    if val_ema > best_ema:
                        best_ema = val_ema
                        ema_names.append('ema-best.pth')
                if panels and env.is_main:
                    for i, strip in enumerate(val_panels(model, vsets[0].loaders.dataset, norm, panels, device,
                                                         precision, config['attention_rows'])):
                        log.image(f'val_images/{i}', strip, epoch)  # bicubic | model | ground truth
            if config['epoch_save'] is not None and epoch % config['epoch_save'] == 0:
                names.append(f'epoch-{epoch}.pth')
            save(epoch, names, ema_names)
            good = (last, epoch)
            elapsed = time.time() - t_start
            total = elapsed / (epoch - start_epoch) * (config['epoch_max'] - start_epoch)
            log(f'{msg}, {time.time() - t_epoch:.1f}s, {elapsed / 60:.1f}/{total / 60:.1f} min')
            for key, value in (('epoch', epoch), ('train_loss', loss), ('val_psnr', val), ('val_psnr_ema', val_ema)):
                history[key].append(value)
        digests = all_gather(weights_digest(model))
        if len(set(digests)) != 1:
            raise RuntimeError(f'ranks disagree on the weights after training: {digests}')
        if env.distributed:
            log(f'weights identical on all {env.world_size} ranks (sha256 {digests[0][:16]})')
    except KeyboardInterrupt:
        log.note(f'interrupted in epoch {epoch}. {last_good(good)}')
        raise
    except TrainingDiverged as e:
        log.note(f'stopped: {e}')
        raise
    except WriteError as e:  # a full disk, a read-only folder
        msg = f'{e}: training stopped in epoch {epoch}. {last_good(good)} once the folder takes files again'
        log.note(msg)
        raise UserError(msg) from None
    finally:
        log.close()
    history['best_val'] = best_val
    return history
