# RetinaNet with an EMO backbone on COCO, 1x (12 epochs): the released recipe (8 GPUs x 4
# images). mmdet's RetinaNet-R50-FPN 1x config with what EMO changes: the backbone, the FPN
# inputs and batch 4 per GPU (retinanet_emo_fpn_coco.py), AdamW and cosine instead of steps
# (emo_fpn_1x_schedule.py). The variant files set the arch, the window, the FPN widths and
# the checkpoint; these defaults are EMO-5M's.
_base_ = ['./retinanet_emo_fpn_coco.py', './emo_fpn_1x_schedule.py']
