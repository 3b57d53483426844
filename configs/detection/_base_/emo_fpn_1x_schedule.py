# The optimizer and schedule of the EMO FPN detectors on COCO 1x (RetinaNet; EMOv2's
# RetinaNet and Mask R-CNN change the schedule and clip the gradients): mmdet's 1x
# schedule (12 epochs, validation every epoch) and default runtime with AdamW instead of
# SGD and cosine instead of steps, for 8 GPUs x 4 images.
_base_ = ['mmdet::_base_/schedules/schedule_1x.py', 'mmdet::_base_/default_runtime.py']

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
