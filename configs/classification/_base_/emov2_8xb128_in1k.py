# EMOv2 on ImageNet-1K: the released recipe (8 GPUs x 128 images = batch 1024; the official
# configs/emo2/emo2_224.py and its training logs, resources/Cls/log_train_EMOv2_*_224.txt).
# Inherits EMO's recipe (RandomResizedCrop + flip + RandAugment m9 mstd 0.5 increasing, no
# RandomErasing / mixup / cutmix, label smoothing 0.1, AdamW wd 0.05 without decay on norms
# and biases, grad-norm clip 5, 300 epochs with 20 warm-up epochs then cosine, EMA 0.9998,
# test resize 256 + center crop 224) and states only what EMOv2 changes: the backbone, the
# batch (1024 instead of 2048) and the lr (3e-3 = 1.5e-3 x batch / 512, from and to 5e-7).
# The variant files set the arch and the head width; these defaults are EMOv2-5M's.
# Knowledge distillation (the released *_KD files): the official recipe adds a soft-target
# KD loss (weight 5, tau 1) from a TResNet-L-V2 teacher (pretrained/tresnet_l_v2_83_9.pth)
# that the authors do not publish, and mmpretrain has no logit-distillation classifier; no
# KD config is given here. The KD weights themselves load and test like the others.
_base_ = './emo_8xb256_in1k.py'

model = dict(backbone=dict(type='EMOv2', arch='5m', window_size=7), head=dict(in_channels=288))

train_dataloader = dict(batch_size=128)
val_dataloader = dict(batch_size=128)
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=3e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=5e-7 / 3e-3, by_epoch=True, begin=0, end=20,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=5e-7, by_epoch=True, begin=20, end=300,
         convert_to_iter_based=True),
]
auto_scale_lr = dict(base_batch_size=1024)
