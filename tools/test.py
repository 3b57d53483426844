"""Evaluate a checkpoint on the test set of any config of this project.

Prints the metrics (top-1/top-5, COCO bbox mAP, aAcc/mIoU/mAcc) and writes them to
``<work_dir>/test_metrics.json``. Examples:
    python tools/test.py CONFIG CHECKPOINT
    python tools/test.py CONFIG CHECKPOINT --show-dir vis   # draw predictions
    python tools/test.py CONFIG CHECKPOINT --out preds.pkl  # mmseg: --out DIR of masks
    python tools/test.py CONFIG CHECKPOINT --allow-partial  # a checkpoint that does not
                                                     # fill the model (else an error)
    bash tools/dist_test.sh CONFIG CHECKPOINT 8
    bash tools/dist_test.sh CONFIG CHECKPOINT 2   # no CUDA: 2 CPU processes (gloo)
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

from emo.utils import keep_freed_memory  # noqa: E402

from emo.apis.launch import (add_common_args, add_result_dump,  # noqa: E402
                              build_runner, check_data, enable_visualization,
                              fix_dataloaders, load_config, parse_args, save_metrics)


def get_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Test an EMO model (mmpretrain / mmdet / mmseg, by default_scope)')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir for logs and test_metrics.json')
    parser.add_argument('--out', help='dump predictions: a .pkl file (classification, '
                        'detection) or a folder for the predicted masks (segmentation)')
    parser.add_argument('--show-dir', help='save images with the predictions drawn: '
                        'classification: in this folder; detection: under the run\'s '
                        'timestamped log folder; segmentation: in <show-dir>/vis_data/'
                        'vis_image (mmseg 1.2.2 also needs the training data to exist)')
    parser.add_argument('--show', action='store_true', help='show the predictions')
    parser.add_argument('--wait-time', type=float, default=2, help='seconds per image')
    parser.add_argument('--allow-partial', action='store_true',
                        help='evaluate even when the checkpoint fills only part of the '
                        'model (by default an error that lists the missing keys: the '
                        'metric would not measure the checkpoint); the missing tensors '
                        'keep their random initialisation and the log lists them')
    parser.add_argument('--compile', action='store_true',
                        help='compile the model with Inductor (torch.compile, freezing: '
                        'emo.deployment.inductor.compile_model): its feature extractor and '
                        'head, one static graph per input shape, compiled on first use '
                        '(tens of seconds a shape on a CPU); pre- and post-processing stay '
                        'eager')
    add_common_args(parser)
    return parse_args(parser, argv)


def main(argv=None):
    args = get_args(argv)
    keep_freed_memory()  # CPU speed: reuse freed memory (emo/utils/allocator.py)
    if not osp.isfile(args.checkpoint) and '://' not in args.checkpoint:
        raise FileNotFoundError(f'checkpoint not found: {args.checkpoint}')
    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    cfg.launcher = args.launcher
    cfg.load_from = args.checkpoint
    # every tensor the model uses must come from the checkpoint (CheckpointFitHook)
    cfg.custom_hooks = [h for h in cfg.get('custom_hooks') or []
                        if h.get('type') != 'CheckpointFitHook'] + [
        dict(type='CheckpointFitHook', complete=True, allow_partial=args.allow_partial)]
    check_data(cfg, ('test', ))
    fix_dataloaders(cfg)
    enable_visualization(cfg, args.show, args.show_dir, args.wait_time)

    runner = build_runner(cfg)
    if args.compile:  # lazily: the graphs freeze the weights the test loop loads first
        from emo.deployment.inductor import compile_model
        compile_model(runner.model)
    if args.out:
        add_result_dump(runner, args.out)
    metrics = runner.test()
    if runner.rank == 0:
        text = save_metrics(metrics, runner.work_dir, 'test_metrics.json')
        print(f'test metrics ({osp.join(runner.work_dir, "test_metrics.json")}):\n{text}')
    return metrics


if __name__ == '__main__':
    main()
