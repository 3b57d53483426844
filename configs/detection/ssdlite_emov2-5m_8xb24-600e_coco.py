# SSDLite with EMOv2-5M, COCO 320x320, 120 epochs x 5 repeats, batch 192 (8 x 24).
_base_ = './_base_/ssdlite_emov2_8xb24-600e_coco.py'
checkpoint = 'checkpoints/EMOv2_5M_224.pth'  # see the _base_ file
model = dict(
    backbone=dict(arch='5m', init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=(160, 288), out_channels=(160, 288, 512, 256, 256, 128)),
    bbox_head=dict(in_channels=(160, 288, 512, 256, 256, 128)))
