"""Convert an official EMO or EMOv2 checkpoint (EMO_1M/net.pth ..., EMOv2_1M_224.pth ...)
to an mmpretrain checkpoint.

The official file is a plain state_dict of the classifier (stage0.* ... norm.*, head.*),
or an official trainer checkpoint whose 'net' entry is one.
The output holds ``backbone.*`` and ``head.fc.*`` keys under ``state_dict``, so it loads
with ``tools/test.py CONFIG OUT`` or ``load_from``. The command checks that every key
fits the EMO classifier of ``--arch`` (strict load) and fails, naming the keys, if not.

    python tools/model_converters/emo_to_mmpretrain.py EMO_1M/net.pth \
        checkpoints/emo_1m_in1k.pth --arch 1m
    python tools/model_converters/emo_to_mmpretrain.py EMOv2_5M_224.pth \
        checkpoints/emov2_5m_in1k.pth --family emov2 --arch 5m

(The backbone alone needs no conversion: init_cfg=dict(type='Pretrained', checkpoint=
'EMO_1M/net.pth') loads the official file and reports what it used.)
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import torch  # noqa: E402

from emo.engine.safe_io import load_from_local  # noqa: E402  (weights_only + allow-list)
from emo.models.utils.state_dict import official_to_mmpretrain, unwrap_state_dict  # noqa


def convert(src, dst, arch=None, num_classes=None, family='emo'):
    state_dict = unwrap_state_dict(load_from_local(src, map_location='cpu'))
    converted = official_to_mmpretrain(state_dict)
    if arch:
        from mmengine.registry import DefaultScope
        from mmpretrain.models import ImageClassifier

        import emo  # noqa: F401
        from emo.models import EMO, EMOv2
        backbone = EMOv2 if family == 'emov2' else EMO
        if arch not in backbone.arch_settings:
            raise ValueError(f'{backbone.__name__} has no arch {arch!r}; choose from '
                             f'{sorted(backbone.arch_settings)}')
        widths = backbone.arch_settings[arch]['widths']
        head = converted.get('head.fc.weight')
        # mmpretrain's registry whatever scope the calling process has set
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            model = ImageClassifier(
                backbone=dict(type=backbone.__name__, arch=arch),
                neck=dict(type='GlobalAveragePooling'),
                head=dict(type='LinearClsHead', in_channels=widths[-1],
                          num_classes=num_classes or (len(head) if head is not None
                                                      else 1000)))
        result = model.load_state_dict(converted, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise ValueError(f'{src} does not fit {backbone.__name__}-{arch.upper()}: missing '
                             f'{result.missing_keys}, unexpected {result.unexpected_keys}')
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    torch.save(dict(state_dict=converted, meta=dict(converted_from=osp.abspath(src))), dst)
    print(f'{src}: {len(converted)} tensors -> {dst}')


def main(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert an official EMO / EMOv2 checkpoint to mmpretrain format')
    parser.add_argument('src', help='official checkpoint (e.g. EMO_1M/net.pth)')
    parser.add_argument('dst', help='output file')
    parser.add_argument('--family', choices=['emo', 'emov2'], default='emo',
                        help='the backbone family of --arch (default: emo)')
    parser.add_argument('--arch', choices=['1m', '2m', '5m', '6m', '20m'],
                        help='check that every key fits this variant (recommended): '
                        'EMO 1m/2m/5m/6m, EMOv2 1m/2m/5m/20m')
    args = parser.parse_args(argv)
    try:
        convert(args.src, args.dst, args.arch, family=args.family)
    except ValueError as e:
        parser.error(str(e))


if __name__ == '__main__':
    main()
