"""Install the ``emo`` package (EMO backbones for OpenMMLab 2.0).

The configs, the tools and ``model-index.yml`` travel as package data in OpenMMLab's
``.mim`` layout (``emo/.mim/{configs,tools,model-index.yml}``, links to the clone's own
folders, committed): a wheel or a non-editable install carries copies, an editable one
reads the clone through the links. That is where ``_base_ = 'emo::<task>/<config>.py'``
(mmengine), ``mim train emo CONFIG`` (openmim) and mmpretrain's model hub look.
"""
import os
import os.path as osp
import re

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def read_version():
    with open(osp.join(HERE, 'emo', 'version.py')) as f:
        return re.search(r"__version__ = '([^']+)'", f.read()).group(1)


def mim_files():
    """The files under ``emo/.mim`` (through its links), relative to ``emo/``."""
    root = osp.join(HERE, 'emo')
    files = []
    for sub in ('configs', 'tools'):
        for dirpath, dirnames, filenames in os.walk(osp.join(root, '.mim', sub),
                                                    followlinks=True):
            dirnames[:] = [d for d in dirnames if d != '__pycache__']
            files += [osp.relpath(osp.join(dirpath, f), root) for f in filenames
                      if not f.endswith('.pyc')]
    return sorted(files) + ['.mim/model-index.yml']


def parse_requirements(name):
    """Requirement lines of ``requirements/<name>.txt`` (comments dropped)."""
    with open(osp.join(HERE, 'requirements', name)) as f:
        lines = (line.split('#')[0].strip() for line in f)
        return [line for line in lines if line]


setup(
    name='emo',
    version=read_version(),
    description='EMO (Rethinking Mobile Block for Efficient Attention-based Models, ICCV 2023) '
    'for OpenMMLab 2.0: mmpretrain, mmdet and mmsegmentation',
    long_description=open(osp.join(HERE, 'README.md')).read(),
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('configs', 'tools', 'tests')),
    python_requires='>=3.8',
    package_data={'emo': mim_files()},
    install_requires=parse_requirements('runtime.txt'),
    extras_require=dict(
        timm=[r for r in parse_requirements('optional.txt') if r.startswith('timm')],
        mim=parse_requirements('mminstall.txt'),
        tests=parse_requirements('tests.txt'),
        build=parse_requirements('build.txt'),
        deploy=parse_requirements('deploy.txt'),
    ),
    license='Apache License 2.0',
    zip_safe=False,
)
