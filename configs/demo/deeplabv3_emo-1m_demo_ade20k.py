# Segmentation demo: DeepLabv3 + EMO-1M on the generated ADE20K-style shape set (96x96 and
# 96x72 images, tools/misc/make_demo_data.py; after reduce_zero_label the labels are
# ADE20K classes 0 background, 1 circle, 2 square, 3 triangle of 150), a few CPU minutes.
# Inherits the real ADE20K recipe and changes only the data root, the image sizes and the
# schedule; no ImageNet weights (init_cfg=None). The images are scaled like ADE20K's (short
# side 512 there, 192 here: (2048, 512) -> (768, 192), ratio 0.5-2.0 when training), so the
# stride-32 head still sees a few cells per shape; 96x96 crops instead of 512x512.
# Checkpoint: <work_dir>/iter_300.pth (iter_{max_iters}).
_base_ = '../segmentation/deeplabv3_emo-1m_8xb4-80k_ade20k-512x512.py'

data_root = 'data/demo/ade/ADEChallengeData2016'
crop_size = (96, 96)
scale = (768, 192)
model = dict(data_preprocessor=dict(size=crop_size), backbone=dict(init_cfg=None))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=scale, ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
# No worker processes: the images are tiny, and make demo runs two demos side by side.
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

# 300 iterations (~19 epochs of the 64 images), AdamW at a from-scratch lr, poly to 0.
max_iters = 300
optim_wrapper = dict(optimizer=dict(lr=2e-3))
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters, by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(logger=dict(interval=25),
                     checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
randomness = dict(seed=0)
