"""Convert an official EMO checkpoint (EMO_1M/net.pth ...) to an mmpretrain checkpoint.

The official file is a plain state_dict of the classifier (stage0.* ... norm.*, head.*).
The output holds ``backbone.*`` and ``head.fc.*`` keys under ``state_dict``, so it loads
with ``tools/test.py CONFIG OUT`` or ``load_from``. The command checks that every key
fits the EMO classifier of ``--arch`` (strict load) and fails, naming the keys, if not.

    python tools/model_converters/emo_to_mmpretrain.py EMO_1M/net.pth \
        checkpoints/emo_1m_in1k.pth --arch 1m

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


def convert(src, dst, arch=None, num_classes=None):
    state_dict = unwrap_state_dict(load_from_local(src, map_location='cpu'))
    converted = official_to_mmpretrain(state_dict)
    if arch:
        from mmengine.registry import DefaultScope
        from mmpretrain.models import ImageClassifier

        import emo  # noqa: F401
        from emo.models import EMO
        widths = EMO.arch_settings[arch]['widths']
        head = converted.get('head.fc.weight')
        # mmpretrain's registry whatever scope the calling process has set
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            model = ImageClassifier(
                backbone=dict(type='EMO', arch=arch),
                neck=dict(type='GlobalAveragePooling'),
                head=dict(type='LinearClsHead', in_channels=widths[-1],
                          num_classes=num_classes or (len(head) if head is not None
                                                      else 1000)))
        result = model.load_state_dict(converted, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise ValueError(f'{src} does not fit EMO-{arch.upper()}: missing '
                             f'{result.missing_keys}, unexpected {result.unexpected_keys}')
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    torch.save(dict(state_dict=converted, meta=dict(converted_from=osp.abspath(src))), dst)
    print(f'{src}: {len(converted)} tensors -> {dst}')


def main(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert an official EMO checkpoint to mmpretrain format')
    parser.add_argument('src', help='official checkpoint (e.g. EMO_1M/net.pth)')
    parser.add_argument('dst', help='output file')
    parser.add_argument('--arch', choices=['1m', '2m', '5m', '6m'],
                        help='check that every key fits this EMO variant (recommended)')
    args = parser.parse_args(argv)
    convert(args.src, args.dst, args.arch)


if __name__ == '__main__':
    main()
