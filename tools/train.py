"""Train any classification, detection or segmentation config of this project.

The library (mmpretrain / mmdet / mmseg) follows the config's ``default_scope``.
Examples:
    python tools/train.py configs/classification/emo-1m_8xb256_in1k.py
    python tools/train.py CONFIG --work-dir work_dirs/x --amp --auto-scale-lr
    python tools/train.py CONFIG --resume                 # latest checkpoint in work_dir
    python tools/train.py CONFIG --cfg-options train_dataloader.batch_size=64
    python tools/train.py CONFIG --tensorboard             # + TensorBoard event files
    bash tools/dist_train.sh CONFIG 8                      # 8 GPUs (torchrun)
    bash tools/dist_train.sh CONFIG 2                      # no CUDA: 2 CPU processes (gloo)

Every run also saves the random generators' states in its checkpoints, so that --resume
continues exactly where the run stopped (RNGStateHook), and stops at the first iteration
whose loss is NaN or infinite (StopOnInvalidLossHook); see docs/reliability.md.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

from emo.utils import keep_freed_memory  # noqa: E402

from emo.apis.launch import (add_common_args, add_training_hooks,  # noqa: E402
                              build_runner, check_data, fix_dataloaders, load_config,
                              parse_args)
from emo.engine.safe_io import check_resume  # noqa: E402


def get_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train an EMO model (mmpretrain / mmdet / mmseg, by default_scope)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and checkpoints '
                        '(default: work_dirs/<config name>)')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from this checkpoint; without a path, from the '
                        'latest checkpoint in the work dir (weights, EMA, optimizer, '
                        'schedulers and random generators: the run continues as if '
                        'never stopped)')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision: float16 with loss scaling on a GPU '
                        '(AmpOptimWrapper), bfloat16 autocast on a CPU '
                        '(CPUAutocastOptimWrapper)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale lr linearly with the total batch size '
                        '(relative to the config\'s auto_scale_lr.base_batch_size)')
    parser.add_argument('--no-validate', action='store_true',
                        help='do not evaluate during training')
    parser.add_argument('--tensorboard', action='store_true',
                        help='also log the scalars to TensorBoard (mmengine\'s '
                        'TensorboardVisBackend): event files in '
                        '<work_dir>/<timestamp>/vis_data/')
    add_common_args(parser)
    return parse_args(parser, argv)


def add_tensorboard(cfg):
    """Append mmengine's TensorboardVisBackend to the visualizer's backends (once)."""
    backends = cfg.visualizer.setdefault('vis_backends', [])
    if not any(b.get('type') == 'TensorboardVisBackend' for b in backends):
        backends.append(dict(type='TensorboardVisBackend'))


def enable_amp(cfg):
    """``--amp``: mmengine's AmpOptimWrapper (float16 autocast, dynamic loss scaling) on a
    GPU; it asserts a CUDA / NPU / MLU device, so without one bfloat16 autocast on the CPU
    (emo.engine.CPUAutocastOptimWrapper: no loss scaling, float32 weights and steps)."""
    from mmengine.device import get_device
    wrapper = cfg.optim_wrapper
    if wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
        print('AMP is already enabled in the config.')
    else:
        wrapper.type = 'AmpOptimWrapper'
        wrapper.setdefault('loss_scale', 'dynamic')
    if get_device() == 'cpu':
        wrapper.type = 'CPUAutocastOptimWrapper'
        wrapper.pop('loss_scale', None)  # bfloat16 keeps float32's range: nothing to scale
        if wrapper.get('dtype') is None:
            wrapper.dtype = 'bfloat16'
        print('--amp without a GPU: bfloat16 autocast on the CPU (CPUAutocastOptimWrapper); '
              'on this CPU fp32 channels_last measured faster (docs/benchmarks.md)')


def main(argv=None):
    args = get_args(argv)
    keep_freed_memory()  # CPU speed: reuse freed memory (emo/utils/allocator.py)
    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    cfg.launcher = args.launcher
    splits = ('train', ) if args.no_validate else ('train', 'val')
    check_data(cfg, splits)
    fix_dataloaders(cfg)
    add_training_hooks(cfg)

    if args.amp or cfg.optim_wrapper.get('type') == 'AmpOptimWrapper':
        enable_amp(cfg)  # a config's own AmpOptimWrapper gets the CPU fallback too
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise KeyError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if args.tensorboard:
        add_tensorboard(cfg)

    # a foreign --resume checkpoint is refused here, naming the mismatch (safe_io)
    check_resume(cfg)
    runner = build_runner(cfg)
    runner.train()


if __name__ == '__main__':
    main()
