"""Parameters and FLOPs of any config of this project (mmengine's counter).

FLOPs are multiply-adds, the attention matmuls included (fvcore / mmengine convention;
``emo.utils.model_complexity`` counts ``scaled_dot_product_attention``). The model runs its
``mode='tensor'`` forward on one zero image: classifier logits, detector head maps
before NMS, segmentor decode head (the auxiliary head is counted in params, not FLOPs).
Default input: the classification crop (224), the detector's test scale (e.g. 320x320,
800x1333), the segmentor's crop size (512x512). Example:
    python tools/analysis/get_flops.py configs/classification/emo-1m_8xb256_in1k.py
    python tools/analysis/get_flops.py CONFIG --shape 800 1333
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from emo.apis import default_shape  # noqa: E402
from emo.utils import model_complexity  # noqa: E402
from emo.apis.launch import DictAction, add_shape_argument, load_config  # noqa: E402


def count(cfg, shape=None):
    """Returns dict(params, flops, shape) for the model of ``cfg``."""
    import emo  # noqa: F401  (registers EMO)
    from emo.apis import build_model_from_cfg
    model = build_model_from_cfg(cfg)  # eval mode, no weight files read
    return model_complexity(model, tuple(shape or default_shape(cfg)))


def main(argv=None):
    parser = argparse.ArgumentParser(description='Count params and FLOPs of a config')
    parser.add_argument('config', help='config file path')
    add_shape_argument(parser, 'input size: H W (or one number for a square); default: the '
                       "config's test size")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value pairs')
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    res = count(cfg, args.shape)
    h, w = res['shape']
    print(f'config: {args.config}\ninput shape: {h}x{w}\n'
          f'params: {res["params"] / 1e6:.4f} M ({res["params"]})\n'
          f'flops: {res["flops"] / 1e9:.4f} G ({res["flops"]}) multiply-adds incl. attention')
    return res


if __name__ == '__main__':
    main()
