# EMO on ImageNet-1K: the released recipe (8 GPUs x 256 images = batch 2048).
# Inherits mmpretrain's Swin-style ImageNet pipeline, AdamW schedule and runtime and states
# only what EMO changes. The variant files set the arch and the head width.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['emo'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    # final_norm: the classifier's LayerNorm after stage 4 (downstream backbones drop it).
    # channels_last: same outputs, a faster training step (README, Speed and benchmarks).
    backbone=dict(type='EMO', arch='5m', out_indices=(4, ), final_norm=True,
                  channels_last=True),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=288,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.0)))

# RandomResizedCrop + flip + RandAugment (m9, mstd 0.5, increasing); unlike Swin no
# RandomErasing (and no mixup / cutmix). The official code picks a random interpolation
# for the crop; mmpretrain's transform takes one, so bicubic is used.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='RandAugment',
        policies='timm_increasing',
        num_policies=2,
        total_level=10,
        magnitude_level=9,
        magnitude_std=0.5,
        hparams=dict(pad_val=[104, 116, 124], interpolation='bicubic')),  # BGR mean
    dict(type='PackInputs'),
]
train_dataloader = dict(batch_size=256, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=256)
test_dataloader = val_dataloader

# AdamW lr 6e-3 at batch 2048 (1.5e-3 x batch / 512), wd 0.05 except on norms and biases,
# gradient-norm clipping at 5. The release trained in mixed precision: add --amp.
optim_wrapper = dict(
    optimizer=dict(lr=6e-3, weight_decay=0.05),
    paramwise_cfg=dict(_delete_=True, norm_decay_mult=0.0, bias_decay_mult=0.0),
    clip_grad=dict(max_norm=5.0))

# Per-iteration schedule: 20 linear warm-up epochs from ~1e-6, then cosine to 1e-6.
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6 / 6e-3, by_epoch=True, begin=0, end=20,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=20, end=300,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)

# EMA of the weights every iteration with decay 0.9998 (mmengine's momentum = 1 - decay);
# validation and the saved checkpoint's EMA weights are what the paper reports.
custom_hooks = [dict(type='EMAHook', momentum=2e-4, priority='ABOVE_NORMAL')]

# `--auto-scale-lr` rescales lr linearly from this total batch.
auto_scale_lr = dict(base_batch_size=2048)
