# Mask R-CNN with an EMOv2 backbone on COCO, 1x (12 epochs), instance segmentation: the
# official recipe (zhangzjn/EMOv2 downstreams/det/configs/mask_rcnn/
# mask-rcnn_emo2_*_fpn_1x_coco.py; 8 GPUs x 4 images). mmdet's Mask R-CNN-R50-FPN 1x config
# from its parts (model: FPN, RPN, RoI box and mask heads; COCO instance data: 1333x800
# keep-ratio pipeline with flip, box and mask AP evaluation) with the EMOv2 FPN schedule
# (emov2_fpn_1x_schedule.py: mmdet's 1x schedule and runtime, AdamW lr 2e-4 wd 0.05 without
# decay on norms, batch 32, gradient clipping at 0.1, constant after the warm-up, cosine
# over epochs 6-12); states only what EMOv2 changes in the model and data: the backbone,
# the FPN inputs and batch 4 per GPU. Mask R-CNN is a two-stage detector:
# this project's deployment (export, runtimes, INT8) covers the single-stage ones only. The
# variant files set the arch, the FPN widths and the checkpoint; these defaults are
# EMOv2-5M's.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py', 'mmdet::_base_/datasets/coco_instance.py',
    './emov2_fpn_1x_schedule.py', './emo_pretrained.py'
]

# The released classifier files; see ssdlite_emov2_8xb24-600e_coco.py.
checkpoint = 'checkpoints/EMOv2_5M_224.pth'

model = dict(
    backbone=dict(_delete_=True, type='EMOv2', arch='5m', out_indices=(1, 2, 3, 4),
                  frozen_stages=1, norm_eval=True, window_size=10, final_norm=False,
                  init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    neck=dict(in_channels=[48, 72, 160, 288]))

train_dataloader = dict(batch_size=4, num_workers=4)
