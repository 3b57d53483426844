# RetinaNet with EMOv2-20M and FPN, COCO 1x (12 epochs), batch 32 (8 x 4).
_base_ = './_base_/retinanet_emov2_fpn_8xb4-1x_coco.py'
checkpoint = 'checkpoints/EMOv2_20M_224.pth'  # not released: train it (see _base_)
model = dict(
    backbone=dict(arch='20m', init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[64, 128, 320, 448]))
