# RetinaNet with an EMO backbone on COCO, the model and the data (the schedule is
# emo_fpn_1x_schedule.py's or emov2_fpn_1x_schedule.py's): mmdet's RetinaNet-R50-FPN 1x
# config from its parts (model: FPN, RetinaHead; COCO detection data: 1333x800 keep-ratio
# pipeline with flip; test-time augmentation) with the EMO weights (emo_pretrained.py);
# states only what EMO changes: the backbone, the FPN inputs, batch 4 per GPU. The defaults
# are EMO-5M's.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py', 'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::retinanet/retinanet_tta.py', './emo_pretrained.py'
]

model = dict(
    backbone=dict(
        _delete_=True,
        type='EMO',
        arch='5m',
        out_indices=(1, 2, 3, 4),  # strides 4..32; the FPN starts at stride 8
        frozen_stages=1,  # stem and stage 1
        norm_eval=True,
        window_size=10,  # 7 for 1M / 2M
        final_norm=False,
        init_cfg=dict(type='Pretrained', checkpoint=_base_.checkpoint)),
    neck=dict(in_channels=[48, 72, 160, 288]))

train_dataloader = dict(batch_size=4, num_workers=4)
