# Semantic FPN + EMOv2-2M on ADE20K, 512x512 crops, 160k iterations, batch 32 (4 x 8).
_base_ = './_base_/fpn_emov2_4xb8-160k_ade20k-512x512.py'
checkpoint = 'checkpoints/EMOv2_2M_224.pth'  # override: model.backbone.init_cfg.checkpoint=PATH
model = dict(
    backbone=dict(arch='2m', init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[32, 48, 120, 200]))
