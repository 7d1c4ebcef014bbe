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

from .config import OPTIMIZERS
from .data import EpochLoaders, make_dataset, rank_batch_size
from .distributed import DistEnv, all_gather, barrier
from .loop import train_epoch, validate, weights_digest
from .losses import make_loss
from .probe import probe
from .schedule import build_scheduler
from .run_folder import RunLog, check_run_folder, claim_run_folder, folder_state, save_config
from .state import (RANK_STREAM, check_resumable, forked_rng, init_weights, make_checkpoint,
                    parameters_finite, restore, rng_state)


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
    """(train EpochLoaders, val EpochLoaders or None, a one-line summary)."""
    workers = config['num_workers'] if config['num_workers'] is not None else default_workers(env)
    pin = device.type == 'cuda'
    train_set = make_dataset(config['train_dataset'], 'train_dataset', where)
    batch = rank_batch_size(config['train_dataset']['batch_size'], env, 'train_dataset')
    train_loaders = EpochLoaders(train_set, batch, env, config['seed'], workers, pin, train=True)
    val_loaders, n_val = None, 0
    if config['val_dataset'] is not None and config['epoch_val'] is not None:
        val_spec = with_protocol_scale(config['val_dataset'], parse_eval_type(config['eval_type']), f'{where}: val_dataset')
        val_set = make_dataset(val_spec, 'val_dataset', where)
        val_batch = max(1, config['val_dataset']['batch_size'] // env.world_size)
        val_loaders, n_val = EpochLoaders(val_set, val_batch, env, config['seed'], workers, pin, train=False), len(val_set)
    summary = f'train: {len(train_set)} items, {batch} per step and process; val: {n_val} items; {workers} worker(s)'
    return train_loaders, val_loaders, summary


def train(config: dict, save_path: Path, *, where: str = 'config', resume: Optional[str] = None,
          overwrite: bool = False, env: DistEnv = DistEnv(), device: torch.device = torch.device('cpu'),
          gpu_ids: Sequence[int] = (), init: Optional[str] = None) -> dict:
    """Run (or continue, with `resume`) training; with `init`, a new run starts from that
    checkpoint's model weights (fine-tuning). Returns {'epoch', 'train_loss', 'val_psnr'} lists
    for the epochs run here, and 'best_val'. config must come from check_train_config."""
    save_path, precision = Path(save_path), config['precision']
    check_precision(precision, device)
    if resume and init:
        raise UserError('--resume continues a run and --init starts one from weights: give one of them')
    resume = Path(resume) if resume else None
    ckpt = check_resumable(load_checkpoint(resume), resume, config['epoch_max']) if resume else None
    init_ckpt = read_checkpoint(init) if init else None  # the project's format, or OpenMMLab's
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
    start_epoch, best_val, note = 0, -math.inf, None
    if ckpt is not None:
        start_epoch, best_val, note = restore(ckpt, resume, model, optimizer, scheduler, scaler, env)
    else:
        if init_ckpt is not None:
            note = init_weights(model, init_ckpt, init, config)
            trained, used = DataNorm.from_checkpoint(init_ckpt, init), DataNorm.from_config(config['data_norm'])
            if trained != used:  # e.g. OpenMMLab's EDSR-LIIF (DIV2K mean, div 1) into a 0.5 / 0.5 config
                note += (f'; note: it was trained with data_norm {trained.describe()}, this config uses '
                         f'{used.describe()} (set the config\'s data_norm to match to fine-tune it)')
        seed_all(derive_seed(config['seed'], RANK_STREAM, env.rank))  # each rank's own draws
    train_loaders, val_loaders, data_summary = build_loaders(config, where, env, device)
    norm = DataNorm.from_config(config['data_norm'])
    probe(model, train_loaders.dataset, val_loaders and val_loaders.dataset, norm, config, where, device)

    barrier()  # every rank has checked the folder before rank 0 changes it
    lock, moved, notes, failed = None, None, [], None
    if env.is_main:
        try:
            lock, moved, notes = claim_run_folder(save_path, move_aside, checked)
            save_config(save_path, config, start_epoch)
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
    log(f'model: {config["model"]["name"]}, {n_params / 1e6:.3f}M parameters; device {device}, '
        f'{env.world_size} process(es), precision {precision}; {data_summary}')

    net = model
    if env.distributed:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == 'cuda' else None)
    elif len(gpu_ids) > 1:
        net = nn.DataParallel(model, device_ids=list(gpu_ids))

    def save(epoch: int, names: list[str]) -> None:
        rng = all_gather(rng_state())
        if not parameters_finite(model):
            raise TrainingDiverged(f'the weights became non-finite in epoch {epoch}; not saved. '
                                   f'{last_good(good)} with a lower learning rate')
        if env.is_main:
            ckpt_out = make_checkpoint(model, config, optimizer, scheduler, scaler, epoch, best_val, rng)
            for name in names:
                save_checkpoint(ckpt_out, save_path / name)

    history = {'epoch': [], 'train_loss': [], 'val_psnr': [], 'best_val': best_val}
    # The latest checkpoint on disk that this run can continue from: (path, epoch) or None.
    good = (resume, start_epoch) if ckpt is not None else None
    epoch, t_start = start_epoch, time.time()
    try:
        if ckpt is None:
            save(0, ['epoch-last.pth'])  # Ctrl-C in epoch 1 still leaves a resumable state
            good = (last, 0)
        for epoch in range(start_epoch + 1, config['epoch_max'] + 1):
            t_epoch = time.time()
            lr = optimizer.param_groups[0]['lr']
            try:
                loss = train_epoch(net, train_loaders(epoch), norm, optimizer, scaler, device, precision,
                                   show=env.is_main, desc=f'epoch {epoch}', loss_fn=loss_fn)
            except FloatingPointError as e:
                raise TrainingDiverged(f'{e} in epoch {epoch}: stopped before updating the weights. '
                                       f'{last_good(good)} with a lower learning rate, or check the data') from None
            if scheduler is not None:
                scheduler.step()
            msg = f'epoch {epoch}/{config["epoch_max"]}, lr {lr:.2e}, train: loss={loss:.4f}'
            log.scalar('lr', lr, epoch)
            log.scalar('loss', loss, epoch)
            names, val = ['epoch-last.pth'], None
            if val_loaders is not None and epoch % config['epoch_val'] == 0:
                # Validation's own random state (crops, scales drawn in this process when there are no
                # loader workers): the same samples every epoch, training's stream untouched.
                try:
                    with forked_rng(val_loaders.seed_for(epoch)):
                        val = validate(model, val_loaders(epoch), norm, config['eval_type'], config['eval_bsize'],
                                       device, precision, show=env.is_main, attention_rows=config['attention_rows'])
                except UserError as e:
                    raise TrainingDiverged(f'validation in epoch {epoch}: {e}. {last_good(good)}') from None
                log.scalar('psnr', val, epoch)
                msg += f', val: psnr={val:.4f}'
                if val > best_val:
                    best_val = val
                    names.append('epoch-best.pth')
            if config['epoch_save'] is not None and epoch % config['epoch_save'] == 0:
                names.append(f'epoch-{epoch}.pth')
            save(epoch, names)
            good = (last, epoch)
            elapsed = time.time() - t_start
            total = elapsed / (epoch - start_epoch) * (config['epoch_max'] - start_epoch)
            log(f'{msg}, {time.time() - t_epoch:.1f}s, {elapsed / 60:.1f}/{total / 60:.1f} min')
            for key, value in (('epoch', epoch), ('train_loss', loss), ('val_psnr', val)):
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
