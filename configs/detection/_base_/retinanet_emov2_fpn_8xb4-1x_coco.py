# RetinaNet with an EMOv2 backbone on COCO, 1x (12 epochs): the official recipe (zhangzjn/
# EMOv2 downstreams/det/configs/retinanet/retinanet_emo2_*_fpn_1x_coco.py; 8 GPUs x 4).
# Inherits the EMO RetinaNet config (mmdet's RetinaNet-R50-FPN 1x, AdamW lr 2e-4 wd 0.05
# without decay on norms, batch 32) and states only what EMOv2 changes: the backbone
# (window 10 for every variant), gradient clipping at 0.1 and the schedule (constant after
# the warm-up, cosine over epochs 6-12). The variant files set the arch, the FPN widths and
# the checkpoint; these defaults are EMOv2-5M's.
_base_ = './retinanet_emo_fpn_8xb4-1x_coco.py'

# The released classifier files; see ssdlite_emov2_8xb24-600e_coco.py.
checkpoint = 'checkpoints/EMOv2_5M_224.pth'

model = dict(
    backbone=dict(_delete_=True, type='EMOv2', arch='5m', out_indices=(1, 2, 3, 4),
                  frozen_stages=1, norm_eval=True, window_size=10, final_norm=False,
                  init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))

optim_wrapper = dict(clip_grad=dict(max_norm=0.1, norm_type=2))

# 500-iteration linear warm-up from 1e-5 x lr, constant up to epoch 6, cosine to 0 at 12.
max_epochs = 12
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-5, by_epoch=False, begin=0, end=500),
    dict(type='CosineAnnealingLR', begin=max_epochs // 2, T_max=max_epochs // 2,
         end=max_epochs, by_epoch=True, eta_min=0)
]
