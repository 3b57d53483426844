# EMO-2M on ImageNet-1K, 300 epochs, batch 2048 (8 x 256).
_base_ = './_base_/emo_8xb256_in1k.py'
model = dict(backbone=dict(arch='2m'), head=dict(in_channels=200))
