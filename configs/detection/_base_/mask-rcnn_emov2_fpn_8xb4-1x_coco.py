# Mask R-CNN with an EMOv2 backbone on COCO, 1x (12 epochs), instance segmentation: the
# official recipe (zhangzjn/EMOv2 downstreams/det/configs/mask_rcnn/
# mask-rcnn_emo2_*_fpn_1x_coco.py; 8 GPUs x 4 images). Inherits mmdet's Mask R-CNN-R50-FPN
# 1x config (FPN, RPN, RoI box and mask heads, 1333x800 keep-ratio pipeline with flip,
# box and mask AP evaluation) and states only what EMOv2 changes: the backbone, the FPN
# inputs, AdamW with gradient clipping, the schedule and batch 4 per GPU. Mask R-CNN is a
# two-stage detector: this project's deployment (export, runtimes, INT8) covers the
# single-stage ones only. The variant files set the arch, the FPN widths and the
# checkpoint; these defaults are EMOv2-5M's.
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['emo'], allow_failed_imports=False)

# The released classifier files; see ssdlite_emov2_8xb24-600e_coco.py.
checkpoint = 'checkpoints/EMOv2_5M_224.pth'

model = dict(
    backbone=dict(_delete_=True, type='EMOv2', arch='5m', out_indices=(1, 2, 3, 4),
                  frozen_stages=1, norm_eval=True, window_size=10, final_norm=False,
                  init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    neck=dict(in_channels=[48, 72, 160, 288]))

train_dataloader = dict(batch_size=4, num_workers=4)

# AdamW lr 2e-4 (batch 32), wd 0.05 except on norms, gradient-norm clipping at 0.1.
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=2e-4, betas=(0.9, 0.999),
                   weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0),
    clip_grad=dict(max_norm=0.1, norm_type=2))

# 500-iteration linear warm-up from 1e-5 x lr, constant up to epoch 6, cosine to 0 at 12.
max_epochs = 12
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-5, by_epoch=False, begin=0, end=500),
    dict(type='CosineAnnealingLR', begin=max_epochs // 2, T_max=max_epochs // 2,
         end=max_epochs, by_epoch=True, eta_min=0)
]

# `--auto-scale-lr` rescales lr linearly from this total batch (8 GPUs x 4 images).
auto_scale_lr = dict(base_batch_size=32)
