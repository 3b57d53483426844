# EMOv2-5M on ImageNet-1K at 512 (the official *_512 factories: window 8), test resize
# 585 + center crop 512 (crop ratio 0.875); otherwise the 224 recipe. The published 82.9
# top-1 (EMOv2_5M_512_KD.pth) was trained with knowledge distillation from a teacher the
# authors do not publish (see the _base_ file); this config is the recipe without it, and
# the config that tests the released file.
_base_ = './emov2-5m_8xb128_in1k-256px.py'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=512, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandAugment', policies='timm_increasing', num_policies=2, total_level=10,
         magnitude_level=9, magnitude_std=0.5,
         hparams=dict(pad_val=[104, 116, 124], interpolation='bicubic')),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=585, edge='short', backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=512),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
