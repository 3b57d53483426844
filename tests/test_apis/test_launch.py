"""emo.apis.launch: what tools/train.py adds to every config."""
from mmengine.config import Config

from emo.apis.launch import add_training_hooks


def test_training_hooks_added_once_with_or_without_custom_hooks():
    bare = Config(dict(default_scope='mmseg'))  # mmseg's runtime has no custom_hooks
    add_training_hooks(bare)
    assert bare.custom_hooks == [dict(type='RNGStateHook'),
                                 dict(type='StopOnInvalidLossHook')]
    ema = Config(dict(custom_hooks=[dict(type='EMAHook'), dict(type='RNGStateHook')]))
    add_training_hooks(ema)
    add_training_hooks(ema)
    assert [h['type'] for h in ema.custom_hooks] == ['EMAHook', 'RNGStateHook',
                                                     'StopOnInvalidLossHook']
