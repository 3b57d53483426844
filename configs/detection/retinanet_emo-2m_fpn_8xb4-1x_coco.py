# RetinaNet with EMO-2M and FPN, COCO 1x (12 epochs), batch 32 (8 x 4).
_base_ = './_base_/retinanet_emo_fpn_8xb4-1x_coco.py'
checkpoint = 'checkpoints/EMO_2M/net.pth'  # see the _base_ file
model = dict(
    backbone=dict(arch='2m', window_size=7, init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[32, 48, 120, 200]))
