"""Install the ``emo`` package (EMO backbones for OpenMMLab 2.0)."""
import os.path as osp
import re

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def read_version():
    with open(osp.join(HERE, 'emo', 'version.py')) as f:
        return re.search(r"__version__ = '([^']+)'", f.read()).group(1)


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
    install_requires=parse_requirements('runtime.txt'),
    extras_require=dict(
        mim=parse_requirements('mminstall.txt'),
        tests=parse_requirements('tests.txt'),
        build=parse_requirements('build.txt'),
        deploy=parse_requirements('deploy.txt'),
    ),
    license='Apache License 2.0',
    zip_safe=False,
)
