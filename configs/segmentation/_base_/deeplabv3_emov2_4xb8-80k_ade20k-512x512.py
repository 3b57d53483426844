# DeepLabv3 with an EMOv2 backbone on ADE20K: the official recipe (zhangzjn/EMOv2
# downstreams/seg/configs/deeplabv3/deeplabv3_emo2_*-80k_ade20k-512x512.py; 4 GPUs x 8
# images, 80k iterations, 512x512 crops). Inherits the EMO DeepLabv3 config (mmseg's
# ResNet-50 DeepLabv3 ADE20K: pipeline, evaluation, runtime, 80k loop; ASPP on stride 32
# with 256 channels, FCN auxiliary head on stage 3) and states only what EMOv2 changes:
# the backbone, batch 8 per GPU, AdamW wd 0.05 with gradient clipping at 0.1, and the
# schedule (constant after the warm-up, cosine over the second half). The variant files
# set the arch, the head input widths and the checkpoint; these defaults are EMOv2-5M's.
# The EMOv2 PSPNet config inherits this one and swaps the ASPP for PSP pooling.
_base_ = './deeplabv3_emo_8xb4-80k_ade20k-512x512.py'

# ImageNet-1K weights: the released classifier files (EMOv2_5M_224.pth ...), loaded as they
# are and reported by name; see configs/detection/_base_/ssdlite_emov2_8xb24-600e_coco.py.
checkpoint = 'checkpoints/EMOv2_5M_224.pth'

# BatchNorm + SiLU after the depthwise convs, as in the classifier, so every backbone
# tensor loads. The official repository's segmentation backbone now has LayerNorm + GELU
# there (EMOv2 dw_norm_cfg / dw_act_cfg give it), but the published runs did not: their
# logs (resources/Seg/*.log) name the parameters conv_local.norm.weight (a BatchNorm's;
# a LayerNorm2d's would be conv_local.norm.norm.weight), and the published FLOPs of the
# 20M segmentors are those of the BatchNorm form (the LN form counts 0.09G more).
model = dict(
    backbone=dict(_delete_=True, type='EMOv2', arch='5m', out_indices=(1, 2, 3, 4),
                  frozen_stages=-1, norm_eval=False, window_size=10, final_norm=False,
                  init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))

train_dataloader = dict(batch_size=8)

# AdamW lr 1.2e-4 for batch 32, wd 0.05 except on norms, gradient-norm clipping at 0.1.
optimizer = dict(_delete_=True, type='AdamW', lr=1.2e-4, betas=(0.9, 0.999),
                 weight_decay=0.05)
optim_wrapper = dict(optimizer=optimizer,
                     clip_grad=dict(_delete_=True, max_norm=0.1, norm_type=2))

# 500-iteration linear warm-up from 1e-5 x lr, constant up to 40k, cosine to 0 at 80k.
max_iters = 80000
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-5, by_epoch=False, begin=0, end=500),
    dict(type='CosineAnnealingLR', begin=max_iters // 2, T_max=max_iters // 2,
         end=max_iters, by_epoch=False, eta_min=0)
]
