# The optimizer and schedule of the EMOv2 FPN detectors on COCO 1x (RetinaNet, Mask R-CNN):
# the EMO ones (emo_fpn_1x_schedule.py: mmdet's 1x schedule and runtime, AdamW lr 2e-4 wd
# 0.05 without decay on norms, batch 32) with the official EMOv2 changes: gradient
# clipping at 0.1 and the schedule (constant after the warm-up, cosine over epochs 6-12).
_base_ = './emo_fpn_1x_schedule.py'

optim_wrapper = dict(clip_grad=dict(max_norm=0.1, norm_type=2))

# 500-iteration linear warm-up from 1e-5 x lr, constant up to epoch 6, cosine to 0 at 12.
max_epochs = 12
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-5, by_epoch=False, begin=0, end=500),
    dict(type='CosineAnnealingLR', begin=max_epochs // 2, T_max=max_epochs // 2,
         end=max_epochs, by_epoch=True, eta_min=0)
]
