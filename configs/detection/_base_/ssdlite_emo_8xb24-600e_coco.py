# SSDLite with an EMO backbone on COCO, 320x320: the released recipe (8 GPUs x 24 images).
# Inherits mmdet's SSDLite-MobileNetV2 config (its depthwise SSDNeck / SSDHead with BN eps
# 1e-3 momentum 0.03 and ReLU6, the 320x320 anchors, the Expand / MinIoURandomCrop /
# photometric pipeline, the 5x RepeatDataset, 120 epochs with a 500-iteration linear
# warm-up then cosine) and the EMO weights (emo_pretrained.py), and states only what EMO
# changes. The variant files set the arch, the window, the neck / head widths and the
# checkpoint; these defaults are EMO-5M's.
_base_ = ['mmdet::ssd/ssdlite_mobilenetv2-scratch_8xb24-600e_coco.py', './emo_pretrained.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='EMO',
        arch='5m',
        out_indices=(3, 4),  # strides 16, 32
        frozen_stages=-1,
        norm_eval=True,
        window_size=10,  # 7 for 1M / 2M
        final_norm=False,
        init_cfg=dict(type='Pretrained', checkpoint=_base_.checkpoint)),
    neck=dict(in_channels=(160, 288), out_channels=(160, 288, 512, 256, 256, 128)),
    # SSDHead + loss_cls = None: mmdet 3.3.0's SSDHead cannot predict (emo/models/dense_heads).
    bbox_head=dict(type='EMOSSDHead', in_channels=(160, 288, 512, 256, 256, 128)))

# AdamW lr 1.2e-3 (batch 192), wd 0.05, no weight decay on norm layers.
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=1.2e-3, betas=(0.9, 0.999),
                   weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0))

# Evaluate (inherited val_interval=5) and save every 5 epochs, as the release did.
default_hooks = dict(checkpoint=dict(interval=5))
