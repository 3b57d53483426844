"""Train any classification, detection or segmentation config of this project.

The library (mmpretrain / mmdet / mmseg) follows the config's ``default_scope``.
Examples:
    python tools/train.py configs/classification/emo-1m_8xb256_in1k.py
    python tools/train.py CONFIG --work-dir work_dirs/x --amp --auto-scale-lr
    python tools/train.py CONFIG --resume                 # latest checkpoint in work_dir
    python tools/train.py CONFIG --cfg-options train_dataloader.batch_size=64
    bash tools/dist_train.sh CONFIG 8                      # 8 GPUs (torchrun)
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

from emo.utils.launch import (add_common_args, build_runner, check_data,  # noqa: E402
                              fix_dataloaders, load_config, parse_args)


def get_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train an EMO model (mmpretrain / mmdet / mmseg, by default_scope)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and checkpoints '
                        '(default: work_dirs/<config name>)')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from this checkpoint; without a path, from the '
                        'latest checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision (AmpOptimWrapper)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale lr linearly with the total batch size '
                        '(relative to the config\'s auto_scale_lr.base_batch_size)')
    parser.add_argument('--no-validate', action='store_true',
                        help='do not evaluate during training')
    add_common_args(parser)
    return parse_args(parser, argv)


def main(argv=None):
    args = get_args(argv)
    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    cfg.launcher = args.launcher
    splits = ('train', ) if args.no_validate else ('train', 'val')
    check_data(cfg, splits)
    fix_dataloaders(cfg)

    if args.amp:
        if cfg.optim_wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
            print('AMP is already enabled in the config.')
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
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

    runner = build_runner(cfg)
    runner.train()


if __name__ == '__main__':
    main()
