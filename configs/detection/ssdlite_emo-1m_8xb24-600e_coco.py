# SSDLite with EMO-1M, COCO 320x320, 120 epochs x 5 repeats, batch 192 (8 x 24).
_base_ = './_base_/ssdlite_emo_8xb24-600e_coco.py'
checkpoint = 'checkpoints/EMO_1M/net.pth'  # see the _base_ file
model = dict(
    backbone=dict(arch='1m', window_size=7, init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=(80, 168), out_channels=(80, 168, 512, 256, 256, 128)),
    bbox_head=dict(in_channels=(80, 168, 512, 256, 256, 128)))
