# RetinaNet with EMOv2-2M and FPN, COCO 1x (12 epochs), batch 32 (8 x 4).
_base_ = './_base_/retinanet_emov2_fpn_8xb4-1x_coco.py'
checkpoint = 'checkpoints/EMOv2_2M_224.pth'  # see the _base_ file
model = dict(
    backbone=dict(arch='2m', init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[32, 48, 120, 200]))
