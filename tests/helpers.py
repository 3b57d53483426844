"""Helpers shared by the tests (this folder is on sys.path through conftest.py)."""
import importlib.util
import os.path as osp

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
