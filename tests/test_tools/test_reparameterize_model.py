"""tools/model_converters/reparameterize_model.py: a checkpoint of the training form ->
a deploy checkpoint that the same config loads with ``model.backbone.deploy=True`` and
that gives the same outputs."""
import pytest
import torch
from helpers import accumulation_length, assert_close_derived, run_tool
from mmengine.config import Config
from reference_emo import randomize_

from emo.apis import build_model_from_cfg

TOOL = 'tools/model_converters/reparameterize_model.py'


@pytest.mark.parametrize('config, shape', [
    ('configs/classification/emo-1m_8xb256_in1k.py', (2, 3, 224, 224)),
    ('configs/segmentation/deeplabv3_emo-1m_8xb4-80k_ade20k-512x512.py', (1, 3, 97, 131)),
])
def test_reparameterized_checkpoint_loads_with_the_deploy_switch(config, shape, tmp_path):
    cfg = Config.fromfile(config)
    model = build_model_from_cfg(cfg, mode='train')
    randomize_(model.backbone, seed=11)
    model.eval()
    src, dst = tmp_path / 'train.pth', tmp_path / 'deploy.pth'
    torch.save(dict(meta=dict(epoch=3), state_dict=model.state_dict()), src)
    proc = run_tool(TOOL, config, str(src), str(dst))
    assert 'model.backbone.deploy=True' in proc.stdout

    cfg.model.backbone.deploy = True
    deploy = build_model_from_cfg(cfg, mode='train').eval()
    ckpt = torch.load(dst, map_location='cpu', weights_only=True)
    assert ckpt['meta']['deploy'] and ckpt['meta']['epoch'] == 3
    assert not any('running_mean' in k for k in ckpt['state_dict'] if 'backbone' in k)
    deploy.load_state_dict(ckpt['state_dict'], strict=True)
    x = torch.randn(*shape)
    with torch.no_grad():
        a, b = model(x, mode='tensor'), deploy(x, mode='tensor')
        n = accumulation_length(model, x[:1], mode='tensor')
    a, b = (a, b) if torch.is_tensor(a) else (a[0], b[0])
    assert_close_derived(b, a, n)  # the derived float32 bound (helpers.float32_bound)


def test_wrong_checkpoint_and_deploy_config_fail(tmp_path):
    cfg_path = 'configs/classification/emo-1m_8xb256_in1k.py'
    other = build_model_from_cfg(Config.fromfile('configs/classification/emo-2m_8xb256_in1k.py'), mode='train')
    src = tmp_path / 'emo2m.pth'
    torch.save(dict(state_dict=other.state_dict()), src)
    proc = run_tool(TOOL, cfg_path, str(src), str(tmp_path / 'out.pth'), check=False)
    assert proc.returncode != 0 and 'size mismatch' in proc.stderr
    assert not (tmp_path / 'out.pth').exists()
    proc = run_tool(TOOL, cfg_path, str(src), str(tmp_path / 'o.pth'), '--cfg-options',
                    'model.backbone.deploy=True', check=False)
    assert proc.returncode != 0 and 'already True' in proc.stderr
