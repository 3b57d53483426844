# Semantic FPN with an EMOv2 backbone on ADE20K: the official recipe (zhangzjn/EMOv2
# downstreams/seg/configs/sem_fpn/fpn_emo2_*-160k_ade20k-512x512.py; 4 GPUs x 8 images,
# 160k iterations, 512x512 crops). Inherits mmseg's ResNet-50 Semantic FPN ADE20K config
# (FPN neck with 256 channels at strides 4-32, FPNHead with 128 channels, pipeline,
# evaluation, 160k loop) and states only what EMOv2 changes: the backbone, the FPN inputs,
# batch 8 per GPU, AdamW (head lr x 10, no decay on norms), the schedule. The variant files
# set the arch, the FPN widths and the checkpoint; these defaults are EMOv2-5M's.
_base_ = 'mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py'
custom_imports = dict(imports=['emo'], allow_failed_imports=False)

# ImageNet-1K weights and the norms after the depthwise convs: see
# deeplabv3_emov2_4xb8-80k_ade20k-512x512.py.
checkpoint = 'checkpoints/EMOv2_5M_224.pth'

model = dict(
    pretrained=None,  # the ResNet base loads open-mmlab://resnet50_v1c here
    backbone=dict(_delete_=True, type='EMOv2', arch='5m', out_indices=(1, 2, 3, 4),
                  frozen_stages=-1, norm_eval=False, window_size=10, final_norm=False,
                  init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    neck=dict(in_channels=[48, 72, 160, 288]))

# The official run synchronised the backbone's BatchNorms in distributed runs.
sync_bn = 'torch'
train_dataloader = dict(batch_size=8)

# AdamW lr 1.2e-4 for batch 32, wd 0.05; no decay on norms (and 'pos_block', SegFormer's
# name, kept from the official config), lr x 10 on the heads ('head' in the name).
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1.2e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'pos_block': dict(decay_mult=0.0),
                                    'norm': dict(decay_mult=0.0),
                                    'head': dict(lr_mult=10.0)}))

# 1500-iteration linear warm-up from 1e-6 x lr, constant up to 80k, cosine to 0 at 160k.
max_iters = 160000
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='CosineAnnealingLR', begin=max_iters // 2, T_max=max_iters // 2,
         end=max_iters, by_epoch=False, eta_min=0)
]
# `tools/train.py --auto-scale-lr` rescales lr from this total batch (4 GPUs x 8).
auto_scale_lr = dict(enable=False, base_batch_size=32)
