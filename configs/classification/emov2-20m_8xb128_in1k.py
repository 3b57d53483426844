# EMOv2-20M on ImageNet-1K at 224 (window 7), 300 epochs, batch 1024 (8 x 128). The
# official factory and the backbone of the published detectors and segmentors; no ImageNet
# result or weights of it were published.
_base_ = './_base_/emov2_8xb128_in1k.py'
model = dict(backbone=dict(arch='20m'), head=dict(in_channels=448))
