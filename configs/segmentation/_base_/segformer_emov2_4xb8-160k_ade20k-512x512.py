# SegFormer's all-MLP head with an EMOv2 backbone on ADE20K: the official recipe
# (zhangzjn/EMOv2 downstreams/seg/configs/segformer/segformer_emo2_*-160k_ade20k-512x512.py;
# 4 GPUs x 8 images, 160k iterations, 512x512 crops). Inherits mmseg's SegFormer MiT-B0
# ADE20K config (SegformerHead on the four stages, AdamW with head lr x 10 and no decay on
# norms, pipeline, evaluation, 160k loop) and states only what EMOv2 changes: the
# backbone, the head widths, batch 8 per GPU, lr 1.2e-4 wd 0.05, the schedule. The variant
# files set the arch, the head widths and the checkpoint; these defaults are EMOv2-5M's.
_base_ = 'mmseg::segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py'
custom_imports = dict(imports=['emo'], allow_failed_imports=False)

# ImageNet-1K weights and the norms after the depthwise convs: see
# deeplabv3_emov2_4xb8-80k_ade20k-512x512.py.
checkpoint = 'checkpoints/EMOv2_5M_224.pth'

model = dict(
    backbone=dict(_delete_=True, type='EMOv2', arch='5m', out_indices=(1, 2, 3, 4),
                  frozen_stages=-1, norm_eval=False, window_size=10, final_norm=False,
                  init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    # the official widths: 180 channels for EMOv2-1M, 288 for the others
    decode_head=dict(in_channels=[48, 72, 160, 288], channels=288))

sync_bn = 'torch'
train_dataloader = dict(batch_size=8)
optim_wrapper = dict(optimizer=dict(lr=1.2e-4, weight_decay=0.05))

# 1500-iteration linear warm-up from 1e-6 x lr, constant up to 80k, cosine to 0 at 160k.
max_iters = 160000
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='CosineAnnealingLR', begin=max_iters // 2, T_max=max_iters // 2,
         end=max_iters, by_epoch=False, eta_min=0)
]
auto_scale_lr = dict(enable=False, base_batch_size=32)
