# DeepLabv3 with an EMO backbone on ADE20K: the released recipe (8 GPUs x 4 images, 80k
# iterations, 512x512 crops). Inherits mmseg's own ResNet-50 DeepLabv3 ADE20K config (data
# pipeline, evaluation, runtime, 80k loop) and states only what EMO changes; the variant
# files set the arch, window size, head input widths and the ImageNet checkpoint.
_base_ = 'mmseg::deeplabv3/deeplabv3_r50-d8_4xb4-80k_ade20k-512x512.py'
custom_imports = dict(imports=['emo'], allow_failed_imports=False)

# ImageNet-1K weights of the backbone: the official file (EMO_5M/net.pth, loaded as it is)
# or an mmpretrain EMO checkpoint; what was loaded / ignored / missing is logged by name.
# Override:      --cfg-options model.backbone.init_cfg.checkpoint=PATH
# No pretraining: --cfg-options model.backbone.init_cfg=None
checkpoint = 'checkpoints/EMO_5M/net.pth'

model = dict(
    pretrained=None,  # the ResNet base loads open-mmlab://resnet50_v1c here
    backbone=dict(
        _delete_=True,
        type='EMO',
        arch='5m',
        out_indices=(1, 2, 3, 4),  # strides 4, 8, 16, 32
        frozen_stages=-1,
        norm_eval=False,
        window_size=16,
        final_norm=False,  # the classifier's last LayerNorm is not used downstream
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    # ASPP (dilations 1, 12, 24, 36) on the stride-32 map with 256 channels (the ResNet
    # config has 512). Heads keep mmseg's SyncBN: mmengine's Runner and MMSegInferencer
    # turn it back into BatchNorm when not distributed, so CPU / 1-process runs work.
    decode_head=dict(in_channels=288, in_index=3, channels=256),
    # FCN auxiliary head on stage 3 (stride 16), 256 channels, loss weight 0.4.
    auxiliary_head=dict(in_channels=160, in_index=2, channels=256))

# The release synchronised the backbone's BatchNorms too: in distributed runs mmengine
# converts every BatchNorm to SyncBatchNorm (ignored when not distributed).
sync_bn = 'torch'

# AdamW lr 1.2e-4 for batch 32, weight decay 0.01 except on norm layers (the release
# matched 'norm' in parameter names), poly decay (power 0.9) to 0 without warm-up.
optimizer = dict(
    _delete_=True, type='AdamW', lr=1.2e-4, betas=(0.9, 0.999), weight_decay=0.01)
optim_wrapper = dict(optimizer=optimizer, paramwise_cfg=dict(norm_decay_mult=0.0))
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=80000, by_epoch=False)
]
# `tools/train.py --auto-scale-lr` rescales lr from this total batch (8 GPUs x 4).
auto_scale_lr = dict(enable=False, base_batch_size=32)
