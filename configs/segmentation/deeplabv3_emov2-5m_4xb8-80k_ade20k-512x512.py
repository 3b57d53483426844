# DeepLabv3 + EMOv2-5M on ADE20K, 512x512 crops, 80k iterations, batch 32 (4 x 8).
_base_ = './_base_/deeplabv3_emov2_4xb8-80k_ade20k-512x512.py'
checkpoint = 'checkpoints/EMOv2_5M_224.pth'  # override: model.backbone.init_cfg.checkpoint=PATH
model = dict(
    backbone=dict(arch='5m', init_cfg=dict(checkpoint=checkpoint)),
    decode_head=dict(in_channels=288),
    auxiliary_head=dict(in_channels=160))
