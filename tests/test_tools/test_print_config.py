"""tools/misc/print_config.py: the merged config of each task's demo, as mmengine prints
it, equals the config the tools load (``--cfg-options`` applied), and --save-path writes a
config that loads back to the same."""
import os.path as osp

import pytest
from helpers import REPO, load_tool, run_tool
from mmengine.config import Config

from emo.apis.launch import load_config

CONFIGS = ['configs/demo/emo-1m_demo_cls.py', 'configs/demo/ssdlite_emo-1m_demo_coco.py',
           'configs/demo/deeplabv3_emo-1m_demo_ade20k.py']
print_config = load_tool('tools/misc/print_config.py')


def printed(stdout):
    assert stdout.startswith('Config:\n')
    text = stdout[len('Config:\n'):].split('\nsaved the merged config to')[0]
    return Config.fromstring(text, '.py')


@pytest.mark.parametrize('config', CONFIGS)
def test_prints_the_merged_config(config, capsys):
    path = osp.join(REPO, config)
    print_config.main([path, '--cfg-options', 'train_dataloader.batch_size=3',
                       'randomness.seed=7'])
    stdout = capsys.readouterr().out
    cfg = printed(stdout)
    expected = load_config(path, {'train_dataloader.batch_size': 3, 'randomness.seed': 7})
    assert cfg.train_dataloader.batch_size == 3 and cfg.randomness.seed == 7
    assert '_base_' not in stdout  # inheritance (incl. mmdet:: / mmseg::) resolved
    assert cfg.to_dict() == expected.to_dict()
    assert cfg.model.backbone.type == 'EMO'


def test_cli_and_save_path(tmp_path):
    out = str(tmp_path / 'sub' / 'merged.py')
    proc = run_tool('tools/misc/print_config.py', CONFIGS[1], '--save-path', out)
    expected = load_config(osp.join(REPO, CONFIGS[1])).to_dict()
    assert printed(proc.stdout).to_dict() == expected
    assert Config.fromfile(out).to_dict() == expected


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='config file not found: configs/nothing.py'):
        print_config.main(['configs/nothing.py'])
    with pytest.raises(ValueError, match='--save-path must end in .py'):
        print_config.main([osp.join(REPO, CONFIGS[0]), '--save-path', str(tmp_path / 'x.txt')])
