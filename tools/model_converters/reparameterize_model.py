"""Re-parameterize an EMO checkpoint for inference (mmpretrain's reparameterize_model.py).

Builds the model of CONFIG (classifier, detector or segmentor), loads CHECKPOINT into it
(every key must fit), switches every module that has ``switch_to_deploy()`` to its
inference form (``emo.apis.reparameterize_model``: EMO's backbone folds its BatchNorms into
their convs) and writes the deploy weights to OUT. The result loads into the same config
with the backbone's deploy switch, and gives the same outputs in eval mode:

    python tools/model_converters/reparameterize_model.py \\
        configs/classification/emo-1m_8xb256_in1k.py emo_1m_in1k.pth emo_1m_deploy.pth
    python tools/test.py configs/classification/emo-1m_8xb256_in1k.py emo_1m_deploy.pth \\
        --cfg-options model.backbone.deploy=True

OUT holds ``state_dict`` (the weights in the checkpoint's ``state_dict``: for runs with
EMA those are the EMA weights) and ``meta`` (with ``deploy=True``); optimizer and EMA
state are dropped, as a deploy checkpoint is for inference only.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from emo.apis.launch import DictAction, load_config  # noqa: E402


def reparameterize(config, checkpoint, out, cfg_options=None):
    """Load ``checkpoint`` into the model of ``config``, switch every module with
    ``switch_to_deploy()`` to the deploy form and save it to ``out``. Returns the deploy
    model (eval mode)."""
    from mmengine.runner import load_checkpoint, save_checkpoint

    from emo.apis import build_model_from_cfg, reparameterize_model
    cfg = load_config(config, cfg_options)
    if cfg.model.backbone.get('deploy'):
        raise ValueError(f'{config}: model.backbone.deploy is already True; give the '
                         'config of the training form')
    model = build_model_from_cfg(cfg)  # eval mode, no weight files read
    ckpt = load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    if not reparameterize_model(model):
        raise TypeError(f'{config}: no module of the model has switch_to_deploy()')
    meta = dict(ckpt.get('meta', {}), deploy=True, reparameterized_from=osp.abspath(checkpoint))
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    save_checkpoint(dict(meta=meta, state_dict=model.state_dict()), out)
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(
        description='Re-parameterize an EMO model for inference: switch every module '
        'with switch_to_deploy() (EMO\'s backbone folds its BatchNorms into its convs) and '
        'save the deploy checkpoint (load it with --cfg-options model.backbone.deploy=True)')
    parser.add_argument('config', help='config of the model (training form)')
    parser.add_argument('checkpoint', help='checkpoint of that model')
    parser.add_argument('out', help='where to write the deploy checkpoint (.pth)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value pairs')
    args = parser.parse_args(argv)
    if not args.out.endswith(('.pth', '.pt')):
        parser.error(f'out must be a .pth file, got {args.out}')
    model = reparameterize(args.config, args.checkpoint, args.out, args.cfg_options)
    n = sum(p.numel() for p in model.parameters())
    print(f'{args.checkpoint} -> {args.out} (deploy form, {n:,} parameters); load it with '
          f'--cfg-options model.backbone.deploy=True')


if __name__ == '__main__':
    main()
