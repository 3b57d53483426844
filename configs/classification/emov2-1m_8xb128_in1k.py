# EMOv2-1M on ImageNet-1K at 224 (window 7), 300 epochs, batch 1024 (8 x 128).
_base_ = './_base_/emov2_8xb128_in1k.py'
model = dict(backbone=dict(arch='1m'), head=dict(in_channels=180))
