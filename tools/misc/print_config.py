"""Print the fully merged config (every ``_base_`` file, ``mmdet::`` / ``mmseg::`` /
``mmpretrain::`` inheritance and ``--cfg-options`` applied), as mmengine formats it: what
``tools/train.py`` and ``tools/test.py`` run, including the default ``work_dir``.

Examples:
    python tools/misc/print_config.py configs/detection/retinanet_emo-1m_fpn_8xb4-1x_coco.py
    python tools/misc/print_config.py configs/classification/emo-1m_8xb256_in1k.py \\
        --cfg-options train_dataloader.batch_size=64 --save-path merged.py
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from emo.apis.launch import DictAction, load_config  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Print the fully merged config')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--save-path', default=None,
                        help='also write the merged config to this file (.py, .json, .yaml)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value pairs '
                        '(e.g. train_dataloader.batch_size=64)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    print(f'Config:\n{cfg.pretty_text}')
    if args.save_path:
        if not args.save_path.endswith(('.py', '.json', '.yaml', '.yml')):
            raise ValueError(f'--save-path must end in .py, .json or .yaml: {args.save_path}')
        os.makedirs(osp.dirname(osp.abspath(args.save_path)), exist_ok=True)
        cfg.dump(args.save_path)
        print(f'saved the merged config to {args.save_path}')


if __name__ == '__main__':
    main()
