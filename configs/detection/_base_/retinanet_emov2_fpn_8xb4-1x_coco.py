# RetinaNet with an EMOv2 backbone on COCO, 1x (12 epochs): the official recipe (zhangzjn/
# EMOv2 downstreams/det/configs/retinanet/retinanet_emo2_*_fpn_1x_coco.py; 8 GPUs x 4).
# The EMO RetinaNet model and data (retinanet_emo_fpn_coco.py: mmdet's RetinaNet-R50-FPN
# 1x, batch 32) with the EMOv2 FPN schedule (emov2_fpn_1x_schedule.py: AdamW lr 2e-4 wd
# 0.05 without decay on norms, gradient clipping at 0.1, constant after the warm-up, cosine
# over epochs 6-12); states only what EMOv2 changes in the model: the backbone (window 10
# for every variant). The variant files set the arch, the FPN widths and the checkpoint;
# these defaults are EMOv2-5M's.
_base_ = ['./retinanet_emo_fpn_coco.py', './emov2_fpn_1x_schedule.py']

# The released classifier files; see ssdlite_emov2_8xb24-600e_coco.py.
checkpoint = 'checkpoints/EMOv2_5M_224.pth'

model = dict(
    backbone=dict(_delete_=True, type='EMOv2', arch='5m', out_indices=(1, 2, 3, 4),
                  frozen_stages=1, norm_eval=True, window_size=10, final_norm=False,
                  init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))
