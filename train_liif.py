"""Train LIIF (or Meta-SR, or a plain encoder) from a YAML config.

    python train_liif.py --config configs/train-div2k/train_edsr-baseline-liif.yaml
        [--name N | --tag T] [--save-root save] [--gpu 0,1] [--resume CKPT] [--seed S]
        [--precision fp32|bf16|fp16] [--workers N] [--overwrite] [--set KEY.PATH=VALUE ...]
        [--data-root DIR]
    python train_liif.py --resume save/_train_x/epoch-last.pth        # continue a run (in its folder)
    python train_liif.py --config CONFIG --init released.pth          # fine-tune from a checkpoint's weights
    torchrun --nproc_per_node 4 train_liif.py --config ...              # DistributedDataParallel

Config (checked on load by training/config.py; an unknown, missing or mistyped key is one
line naming the key and the file; write floats with a dot and signed exponent, 1.0e-4). A config
may extend others (`_base_: ../train_edsr-baseline-liif.yaml`, resolved against its own folder:
mappings merge key by key, the file wins; `_delete_: true` in a mapping replaces the base's), and
`--set key.path=value` (YAML-typed, repeatable) overrides the result; the run folder's config.yaml
records the resolved config (utils/config_sources.py):
  train_dataset:    {dataset: {name, args}, wrapper: {name, args}, batch_size: int}   (required)
                    batch_size is global: torchrun's N processes take batch_size / N each.
  val_dataset:      same shape, optional; validated every `epoch_val` epochs (then required). Or
                    a list of them, each with an optional `name` and `eval_type`: several
                    validation sets, the first deciding epoch-best.
  data_norm:        {inp: {sub: [..], div: [..]}, gt: {sub: [..], div: [..]}}, 1 or 3 numbers
                    each (default sub 0, div 1). The loss is L1 in normalised units.
  eval_type:        validation PSNR protocol (div2k-S, benchmark-S, rgb-S; default all pixels).
  eval_bsize:       query the decoder this many coords at a time in validation (default all).
  attention_rows:   SRNO/HIIF validation: output rows that attend together (default the whole image).
  model:            {name, args}, any registered model (required).
  optimizer:        {name: adam | adamw | sgd, args: {lr: float, ...}} (required).
  epoch_max:        int (required).
  multi_step_lr:    {milestones: [int], gamma: float}, stepped once per epoch; optional.
  warmup_cosine_lr: {warmup_epochs: int, warmup_start_lr: float, min_lr: 0.0, warmup_prefix: true}:
                    linear warm-up to the optimizer's lr, then cosine to min_lr at epoch_max (from the
                    warm-up's end, or with warmup_prefix false from epoch 1); optional, not with
                    multi_step_lr (training/schedule.py).
  epoch_val, epoch_save: validate / keep epoch-<N>.pth every so many epochs; optional.
  resume:           checkpoint to continue from (as --resume); optional.
  seed:             int, default 0 (--seed). Same seed, same run on CPU.
  precision:        fp32 (default) | bf16 | fp16 (fp16 on CUDA only, with a grad scaler).
  num_workers:      data-loader workers per process (--workers); default min(8, CPUs per process).
                    Samples are seeded one by one (seed, epoch, index): any num_workers, same run.
  init:             checkpoint whose model weights a new run starts from (as --init); recorded in
                    config.yaml and, with its file's sha256 and epoch, in every checkpoint.
  grad_clip:        clip the gradients' global L2 norm to this (default off).
  ema:              keep an exponential moving average of the weights with this decay, e.g.
                    0.999 (default off): validated beside the model, saved in every checkpoint
                    and as ema-last.pth / ema-best.pth (model-only, for test.py and demo.py).
  progress_seconds: when stdout is not a terminal, a progress line this often (default 30).
  tensorboard_every: the loss to TensorBoard every so many iterations (default 100; 0 off).
  val_images:       validation images shown in TensorBoard per validation, bicubic | model |
                    ground truth (default 2; 0 off).
  loss:             {name, args}, a registered loss (training/losses.py); default l1, the only one
                    shipped (the hook for perceptual / GAN terms).

The run folder (save/<name>, or save/_<config stem>[_<tag>]) gets config.yaml, log.txt,
tensorboard/ (loss per epoch and per iteration, lr, val PSNR, validation images), epoch-last.pth (after every epoch, and the
initial state as epoch 0), epoch-best.pth (best val PSNR) and epoch-<N>.pth. An existing
run folder is never replaced: resume it, pick another name, or --overwrite moves it to
<folder>.old-<time> (only a folder holding nothing but a run's files; names are one folder name). A non-finite loss stops the run before the weights are updated; Ctrl-C
stops it; either way epoch-last.pth holds the end of the last completed epoch, resumable
exactly (model, optimizer, scheduler, scaler, best score and every rank's random state).
Resuming with a config whose lr, schedule or optimizer args differ follows the config:
the rate is recomputed for the resumed epoch, and the log notes it.
"""
import argparse
import os
from typing import Optional, Sequence

from inference.eval_config import DATA_ENV, rewrite_data_root
from training.config import check_train_config
from training.distributed import barrier, dist_env, init_distributed, shutdown
from training.run_folder import default_save_path
from training.state import require_training_state
from training.trainer import pick_device, train
from utils.checkpoints import load_checkpoint
from utils.config import check_value_graph
from utils.config_sources import apply_sets, describe_source, load_config
from utils.errors import ArgumentParser, UserError, run_cli


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = ArgumentParser(description='Train LIIF from a YAML config (schema: top of this file).')
    p.add_argument('--config', help='training config (YAML); optional with --resume')
    p.add_argument('--name', help='run folder save/NAME (default save/_<config stem>[_TAG])')
    p.add_argument('--tag', help='suffix of the default run folder name')
    p.add_argument('--save-root', default='save', help='the folder run folders are made in (default save)')
    p.add_argument('--gpu', help="GPUs to use, e.g. '0' or '0,1' (DataParallel), or 'cpu'; default: "
                                 'CUDA if present. Under torchrun use CUDA_VISIBLE_DEVICES instead')
    p.add_argument('--resume', help='checkpoint to continue from, e.g. save/_x/epoch-last.pth (the run '
                                    'continues in that folder unless --name/--tag is given)')
    p.add_argument('--init', help="start a new run from a checkpoint's model weights (fine-tuning a release "
                                  'or the bundled model): fresh optimizer and schedule, epoch 0; needs --config')
    p.add_argument('--seed', type=int, help='random seed (overrides the config; default 0)')
    p.add_argument('--precision', choices=('fp32', 'bf16', 'fp16'), help='overrides the config')
    p.add_argument('--workers', type=int, help='data-loader workers per process (overrides the config)')
    p.add_argument('--set', action='append', default=[], metavar='KEY.PATH=VALUE',
                   help='override one config value, typed as YAML (repeatable; applied after the file and '
                        'its _base_ chain, recorded in the run folder\'s config.yaml), e.g. '
                        '--set optimizer.args.lr=2.0e-4 --set model.args.imnet_spec.args.hidden_list=[128,128]')
    p.add_argument('--data-root', default=None,
                   help=f'folder replacing ./load in the config\'s dataset paths (default: ${DATA_ENV} if set), '
                        'e.g. --data-root /data to read /data/div2k/...; the run\'s config.yaml records the paths used')
    p.add_argument('--overwrite', action='store_true',
                   help='start afresh even if the run folder exists (its contents are moved to '
                        "<folder>.old-<time>, never deleted; refused for a folder holding more than a run's files)")
    return p.parse_args(argv)


def resolve_config(args: argparse.Namespace) -> tuple[dict, str]:
    """The run's config (file, or the resumed checkpoint's) with command-line overrides, checked;
    and its name for messages."""
    if args.config:
        raw, where = load_config(args.config), args.config
    elif args.init:
        raise UserError('--init starts a new run: give --config too (the model in it must match the checkpoint\'s)')
    elif args.resume:
        ckpt = load_checkpoint(args.resume)
        require_training_state(ckpt, args.resume)
        if not isinstance(ckpt.get('config'), dict):
            raise UserError(f'{args.resume} carries no training config: give --config too')
        raw, where = ckpt['config'], f'{args.resume} (its config)'
        check_value_graph(raw, where)  # a pickle can share lists: bounded as a YAML config is
    else:
        raise UserError('give --config FILE to start a run, or --resume CKPT to continue one')
    overrides = {'seed': args.seed, 'precision': args.precision, 'num_workers': args.workers,
                 'resume': args.resume, 'init': args.init}
    raw = {**apply_sets(raw, args.set), **{k: v for k, v in overrides.items() if v is not None}}
    data_root = args.data_root or os.environ.get(DATA_ENV) or None
    if data_root:
        raw = {k: rewrite_data_root(v, data_root) if k in ('train_dataset', 'val_dataset') else v for k, v in raw.items()}
    where = describe_source(where, args.set)
    return check_train_config(raw, where), where


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    env = dist_env()
    config, where = resolve_config(args)
    save_path = default_save_path(args.config, args.name, args.tag, config['resume'], root=args.save_root)
    device, gpu_ids = pick_device(args.gpu, env)
    init_distributed(env, device)
    try:
        train(config, save_path, where=where, resume=config['resume'], overwrite=args.overwrite,
              env=env, device=device, gpu_ids=gpu_ids, init=args.init)
        # Every rank leaves the process group together: a rank tearing gloo down while another is
        # still writing its last files was aborted in C++ ("terminate called without an active
        # exception") on a CI machine. Not after an error: the other ranks may be gone.
        barrier()
    finally:
        shutdown()


if __name__ == '__main__':
    run_cli(main)
