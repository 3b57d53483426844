# SSDLite with EMO-6M, COCO 320x320, 120 epochs x 5 repeats, batch 192 (8 x 24).
_base_ = './_base_/ssdlite_emo_8xb24-600e_coco.py'
checkpoint = 'checkpoints/EMO_6M/net.pth'  # see the _base_ file
model = dict(
    backbone=dict(arch='6m', window_size=10, init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=(160, 320), out_channels=(160, 320, 512, 256, 256, 128)),
    bbox_head=dict(in_channels=(160, 320, 512, 256, 256, 128)))
