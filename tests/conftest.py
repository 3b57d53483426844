"""Shared fixtures. pytest puts this folder on sys.path, so tests can import
``reference_emo`` (the literal reference network) directly."""
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.fixture(scope='session')
def demo_data_root(tmp_path_factory):
    """All demo data sets (imagenet/, coco/, ade/), generated once per session."""
    out = tmp_path_factory.mktemp('demo_data')
    subprocess.run([sys.executable, osp.join(REPO, 'tools/misc/make_demo_data.py'), str(out)],
                   check=True, capture_output=True)
    return str(out)


@pytest.fixture(scope='module')
def single_thread():
    """torch on one thread for a module (``pytestmark = pytest.mark.usefixtures(...)``):
    on a busy 2-core machine two OpenMP threads per process can be ten times slower than
    one (they wait on each other); on an idle one the difference is small."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_configure(config):
    # Known upstream noise of this stack (torch 2.5 torch.load default, mmengine imports).
    for line in ('ignore:You are using `torch.load`:FutureWarning',
                 'ignore::DeprecationWarning'):
        config.addinivalue_line('filterwarnings', line)
