"""Evaluate a checkpoint on the test set of any config of this project.

Prints the metrics (top-1/top-5, COCO bbox mAP, aAcc/mIoU/mAcc) and writes them to
``<work_dir>/test_metrics.json``. Examples:
    python tools/test.py CONFIG CHECKPOINT
    python tools/test.py CONFIG CHECKPOINT --show-dir vis   # draw predictions
    python tools/test.py CONFIG CHECKPOINT --out preds.pkl  # mmseg: --out DIR of masks
    bash tools/dist_test.sh CONFIG CHECKPOINT 8
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

from emo.utils.launch import (DictAction, add_result_dump, check_data,  # noqa: E402
                              enable_visualization, fix_dataloaders, load_config,
                              save_metrics)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Test an EMO model (mmpretrain / mmdet / mmseg, by default_scope)')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir for logs and test_metrics.json')
    parser.add_argument('--out', help='dump predictions: a .pkl file (classification, '
                        'detection) or a folder for the predicted masks (segmentation)')
    parser.add_argument('--show-dir', help='save images with the predictions drawn here '
                        '(detection/segmentation: under the run\'s work dir)')
    parser.add_argument('--show', action='store_true', help='show the predictions')
    parser.add_argument('--wait-time', type=float, default=2, help='seconds per image')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value pairs')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.checkpoint) and '://' not in args.checkpoint:
        raise FileNotFoundError(f'checkpoint not found: {args.checkpoint}')
    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    cfg.launcher = args.launcher
    cfg.load_from = args.checkpoint
    check_data(cfg, ('test', ))
    fix_dataloaders(cfg)
    enable_visualization(cfg, args.show, args.show_dir, args.wait_time)

    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    runner = (Runner.from_cfg(cfg) if 'runner_type' not in cfg
              else RUNNERS.build(cfg))
    if args.out:
        add_result_dump(runner, args.out)
    metrics = runner.test()
    if runner.rank == 0:
        text = save_metrics(metrics, runner.work_dir, 'test_metrics.json')
        print(f'test metrics ({osp.join(runner.work_dir, "test_metrics.json")}):\n{text}')
    return metrics


if __name__ == '__main__':
    main()
