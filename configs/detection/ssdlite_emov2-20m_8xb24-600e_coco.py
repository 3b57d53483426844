# SSDLite with EMOv2-20M, COCO 320x320, 120 epochs x 5 repeats, batch 192 (8 x 24).
_base_ = './_base_/ssdlite_emov2_8xb24-600e_coco.py'
checkpoint = 'checkpoints/EMOv2_20M_224.pth'  # not released: train it (see _base_)
model = dict(
    backbone=dict(arch='20m', init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=(320, 448), out_channels=(320, 448, 512, 256, 256, 128)),
    bbox_head=dict(in_channels=(320, 448, 512, 256, 256, 128)))
