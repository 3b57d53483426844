# SSDLite with an EMOv2 backbone on COCO, 320x320: the official recipe (zhangzjn/EMOv2
# downstreams/det/configs/ssd/ssdlite_emo2_*_8gpu_2lr_coco.py; 8 GPUs x 24 images).
# Inherits the EMO SSDLite config (mmdet's SSDLite-MobileNetV2 neck / head / anchors /
# pipeline, 5x RepeatDataset, 120 epochs, evaluation every 5) and states only what EMOv2
# changes: the backbone (window 10 for every variant), lr 2.4e-3 (twice EMO's), gradient
# clipping at 0.1, and the schedule (constant after the warm-up, cosine over the second
# half). The variant files set the arch, the neck / head widths and the checkpoint; these
# defaults are EMOv2-5M's.
_base_ = './ssdlite_emo_8xb24-600e_coco.py'

# ImageNet-1K weights of the backbone: the released classifier files (EMOv2_1M_224.pth,
# EMOv2_2M_224.pth, EMOv2_5M_224.pth; see README, model zoo) under checkpoints/, loaded as
# they are and reported by name. The official configs name them pretrained/emo2_*M.pth,
# not a released name, so which release (plain or KD) they used is not stated. No 20M
# weights were released. Override with --cfg-options model.backbone.init_cfg.checkpoint=PATH,
# or train without them with --cfg-options model.backbone.init_cfg=None.
checkpoint = 'checkpoints/EMOv2_5M_224.pth'

model = dict(
    backbone=dict(_delete_=True, type='EMOv2', arch='5m', out_indices=(3, 4),
                  frozen_stages=-1, norm_eval=True, window_size=10, final_norm=False,
                  init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))

# AdamW lr 2.4e-3 (batch 192), wd 0.05 except on norms, gradient-norm clipping at 0.1.
optim_wrapper = dict(optimizer=dict(lr=2.4e-3), clip_grad=dict(max_norm=0.1, norm_type=2))

# 500-iteration linear warm-up from 1e-5 x lr, constant lr up to epoch 60, then cosine to 0.
max_epochs = 120
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-5, by_epoch=False, begin=0, end=500),
    dict(type='CosineAnnealingLR', begin=max_epochs // 2, T_max=max_epochs // 2,
         end=max_epochs, by_epoch=True, eta_min=0)
]
