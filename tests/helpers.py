"""Helpers shared by the tests (this folder is on sys.path through conftest.py)."""
import importlib.util
import os
import os.path as osp
import subprocess
import sys

from mmengine.registry import MODELS, init_default_scope

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load_tool(relpath):
    """Import a script of ``tools/`` (they are not a package) as a module."""
    name = osp.splitext(osp.basename(relpath))[0]
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO, relpath))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_model(cfg):
    """``cfg.model`` built as the Runner builds it (top-level data_preprocessor merged,
    under the config's default scope), without reading the backbone's pretrained file."""
    init_default_scope(cfg.default_scope)
    model = cfg.model.copy()
    if cfg.get('data_preprocessor') is not None:
        model.setdefault('data_preprocessor', cfg.data_preprocessor)
    model.backbone = dict(model.backbone, init_cfg=None)
    return MODELS.build(model)


def run_tool(relpath, *args, cwd=REPO, check=True):
    """Run a script of ``tools/`` in a subprocess (one torch thread: on a busy 2-core
    machine two are many times slower); with ``check`` a failure shows its output."""
    proc = subprocess.run([sys.executable, osp.join(REPO, relpath), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1'))
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def assert_nested_equal(a, b, where='', atol=None):
    """Nested dicts / lists of tensors, arrays and plain values are equal: tensors and
    arrays bitwise (same dtype) or, with ``atol``, within it; anything else exactly.
    ``where`` names the first difference."""
    import numpy as np
    import torch
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_nested_equal(a[key], b[key], f'{where}.{key}', atol)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_nested_equal(x, y, f'{where}[{i}]', atol)
    elif isinstance(a, (torch.Tensor, np.ndarray)):
        x, y = torch.as_tensor(a), torch.as_tensor(b)
        if atol is None:
            assert x.dtype == y.dtype and torch.equal(x, y), where
        else:
            x, y = x.double(), y.double()
            assert x.shape == y.shape and torch.allclose(x, y, atol=atol), where
    else:
        assert a == b, where
