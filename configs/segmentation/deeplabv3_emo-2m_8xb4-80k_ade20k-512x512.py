# DeepLabv3 + EMO-2M on ADE20K, 512x512 crops, 80k iterations, batch 32 (8 x 4).
_base_ = './_base_/deeplabv3_emo_8xb4-80k_ade20k-512x512.py'
checkpoint = 'checkpoints/EMO_2M/net.pth'  # override: model.backbone.init_cfg.checkpoint=PATH
model = dict(
    backbone=dict(arch='2m', window_size=7, init_cfg=dict(checkpoint=checkpoint)),
    decode_head=dict(in_channels=200),
    auxiliary_head=dict(in_channels=120))
