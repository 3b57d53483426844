# What every EMO detector base config shares: the plugin import and the backbone's
# ImageNet-1K weights (the bases read them as _base_.checkpoint).
custom_imports = dict(imports=['emo'], allow_failed_imports=False)

# ImageNet-1K weights of the backbone. Convention: the official release files
# (EMO_1M/net.pth ... EMO_6M/net.pth) under checkpoints/, loaded as they are; an mmpretrain
# EMO classifier checkpoint (tools/model_converters/emo_to_mmpretrain.py, or one trained
# with configs/classification) loads the same way. Override on the command line with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
# and train without ImageNet weights with --cfg-options model.backbone.init_cfg=None.
# The loader logs what was loaded / ignored (classifier head and final norm) / missing.
checkpoint = 'checkpoints/EMO_5M/net.pth'
