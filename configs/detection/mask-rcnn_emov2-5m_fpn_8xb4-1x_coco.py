# Mask R-CNN with EMOv2-5M and FPN, COCO instances 1x (12 epochs), batch 32 (8 x 4).
_base_ = './_base_/mask-rcnn_emov2_fpn_8xb4-1x_coco.py'
checkpoint = 'checkpoints/EMOv2_5M_224.pth'  # see the _base_ file
model = dict(
    backbone=dict(arch='5m', init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[48, 72, 160, 288]))
