# RetinaNet with an EMO backbone on COCO, 1x (12 epochs): the released recipe (8 GPUs x 4
# images). Inherits mmdet's RetinaNet-R50-FPN 1x config (FPN, RetinaHead, 1333x800 keep-ratio
# pipeline with flip) and states only what EMO changes: the backbone, the FPN inputs, AdamW,
# cosine instead of steps, batch 4 per GPU. The variant files set the arch, the window, the
# FPN widths and the checkpoint; these defaults are EMO-5M's.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['emo'], allow_failed_imports=False)

# ImageNet-1K weights of the backbone. Convention: the official release files
# (EMO_1M/net.pth ... EMO_6M/net.pth) under checkpoints/, loaded as they are; an mmpretrain
# EMO classifier checkpoint (tools/model_converters/emo_to_mmpretrain.py, or one trained
# with configs/classification) loads the same way. Override on the command line with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
# and train without ImageNet weights with --cfg-options model.backbone.init_cfg=None.
# The loader logs what was loaded / ignored (classifier head and final norm) / missing.
checkpoint = 'checkpoints/EMO_5M/net.pth'

model = dict(
    backbone=dict(
        _delete_=True,
        type='EMO',
        arch='5m',
        out_indices=(1, 2, 3, 4),  # strides 4..32; the FPN starts at stride 8
        frozen_stages=1,  # stem and stage 1
        norm_eval=True,
        window_size=10,  # 7 for 1M / 2M
        final_norm=False,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    neck=dict(in_channels=[48, 72, 160, 288]))

train_dataloader = dict(batch_size=4, num_workers=4)

# AdamW lr 2e-4 (batch 32), wd 0.05, no weight decay on norm layers.
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=2e-4, betas=(0.9, 0.999),
                   weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0))

# 500-iteration linear warm-up, then cosine to 0 over the 12 epochs.
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='CosineAnnealingLR', begin=0, end=12, T_max=12, by_epoch=True, eta_min=0)
]

# `--auto-scale-lr` rescales lr linearly from this total batch (8 GPUs x 4 images).
auto_scale_lr = dict(base_batch_size=32)
