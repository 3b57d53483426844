# PSPNet with an EMOv2 backbone on ADE20K: the official recipe (zhangzjn/EMOv2
# downstreams/seg/configs/pspnet/pspnet_emo2_*-80k_ade20k-512x512.py; 4 GPUs x 8
# images, 80k iterations, 512x512 crops). The official PSPNet and DeepLabv3 recipes differ
# only in the decode head's context module, as mmseg's ResNet-50 configs do, so this
# inherits the EMOv2 DeepLabv3 config (backbone, batch 8 per GPU, AdamW wd 0.05 with
# gradient clipping at 0.1, warm-up / constant / cosine schedule) and swaps its ASPP for
# PSP pooling (the head of pspnet_emo_8xb4-80k_ade20k-512x512.py). The variant files set
# the arch, the head input widths and the checkpoint; these defaults are EMOv2-5M's.
_base_ = './deeplabv3_emov2_4xb8-80k_ade20k-512x512.py'

# PSP pooling (scales 1, 2, 3, 6) instead of ASPP (dilations 1, 12, 24, 36) on the
# stride-32 map with 256 channels; every other setting of the head is DeepLabv3's.
model = dict(decode_head=dict(
    {k: v for k, v in _base_.model.decode_head.items() if k != 'dilations'},
    _delete_=True, type='PSPHead', pool_scales=(1, 2, 3, 6)))
