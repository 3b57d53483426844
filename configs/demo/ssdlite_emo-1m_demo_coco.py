# Detection demo: SSDLite + EMO-1M on the generated 3-class shape set (128x128 images,
# tools/misc/make_demo_data.py), a few CPU minutes. Inherits the real COCO recipe
# (configs/detection/ssdlite_emo-1m_8xb24-600e_coco.py) and changes only:
# - data: root, the 3 classes, no 5x repeat, batch 8, no worker processes (tiny images);
# - no ImageNet weights (init_cfg=None), so norm_eval=False: frozen BN statistics only make
#   sense for pretrained ones (the released mmdet SSDLite-scratch config trains them too);
# - input size: the images' own 128x128 instead of 320x320. Without the Expand (zoom out up
#   to 4x) + MinIoURandomCrop pair, which would shrink the 28-56 px shapes below the
#   smallest (48 px) anchors at this size; flip and photometric distortion stay;
# - schedule: 24 epochs of 12 iterations, 12-iteration warm-up, cosine, lr 4e-3.
# One checkpoint is kept: <work_dir>/epoch_24.pth.
_base_ = '../detection/ssdlite_emo-1m_8xb24-600e_coco.py'

data_root = 'data/demo/coco/'
metainfo = dict(classes=('circle', 'square', 'triangle'))
model = dict(backbone=dict(norm_eval=False, init_cfg=None), bbox_head=dict(num_classes=3))

input_size = 128
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion', brightness_delta=32, contrast_range=(0.5, 1.5),
         saturation_range=(0.5, 1.5), hue_delta=18),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=False),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(times=1, dataset=dict(data_root=data_root, metainfo=metainfo,
                                       pipeline=train_pipeline)))
val_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

max_epochs = 24
optim_wrapper = dict(optimizer=dict(lr=4e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=12),
    dict(type='CosineAnnealingLR', begin=0, T_max=max_epochs, end=max_epochs,
         by_epoch=True, eta_min=1e-5)
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(logger=dict(interval=12),
                     checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
randomness = dict(seed=0)
