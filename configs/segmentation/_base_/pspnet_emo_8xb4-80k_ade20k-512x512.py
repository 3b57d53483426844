# PSPNet with an EMO backbone on ADE20K: the released recipe (8 GPUs x 4 images, 80k
# iterations, 512x512 crops). mmseg's ResNet-50 PSPNet and DeepLabv3 ADE20K configs differ
# only in the decode head's context module, so this inherits the EMO DeepLabv3 config
# (mmseg's, with EMO's backbone, head widths, SyncBN, AdamW and poly schedule) and swaps
# its ASPP for mmseg's PSP pooling; the variant files set the arch, window size, head input
# widths and the ImageNet checkpoint.
_base_ = './deeplabv3_emo_8xb4-80k_ade20k-512x512.py'

# PSP pooling (scales 1, 2, 3, 6) instead of ASPP (dilations 1, 12, 24, 36) on the
# stride-32 map with 256 channels; every other setting of the head is DeepLabv3's.
model = dict(decode_head=dict(
    {k: v for k, v in _base_.model.decode_head.items() if k != 'dilations'},
    _delete_=True, type='PSPHead', pool_scales=(1, 2, 3, 6)))
