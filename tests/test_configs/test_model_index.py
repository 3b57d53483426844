"""model-index.yml and the per-task metafile.yml (OpenMMLab's model-index schema): every
config named exists, every non-demo config has an entry, and the numbers equal the
README's model-zoo tables (which are parsed here, not copied)."""
import glob
import os.path as osp
import re

import pytest
import yaml

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TASKS = {'classification': 'Image Classification', 'detection': 'Object Detection',
         'segmentation': 'Semantic Segmentation'}
# README column -> (metric name in the metafile)
METRIC_COLUMNS = {'top-1': 'Top 1 Accuracy', 'top-5': 'Top 5 Accuracy',
                  'box AP (val2017)': 'box AP', 'mask AP (val2017)': 'mask AP',
                  'mIoU (ADE20K val, ss)': 'mIoU'}
# the papers of the two families: {URL: words of the title}
PAPERS = {'https://arxiv.org/abs/2301.01146': 'Rethinking Mobile Block',
          'https://arxiv.org/abs/2412.06674': 'EMOv2'}


def load_yaml(path):
    with open(osp.join(REPO, path)) as f:
        return yaml.safe_load(f)


@pytest.fixture(scope='module')
def metafiles():
    index = load_yaml('model-index.yml')
    assert set(index) == {'Import'}
    return {path: load_yaml(path) for path in index['Import']}


@pytest.fixture(scope='module')
def models(metafiles):
    """{config path: model entry} over all metafiles."""
    out = {}
    for doc in metafiles.values():
        for model in doc['Models']:
            assert model['Config'] not in out, f'two entries for {model["Config"]}'
            out[model['Config']] = model
    return out


def readme_tables():
    """Every markdown table of README.md as a list of {header: cell} rows."""
    with open(osp.join(REPO, 'README.md')) as f:
        lines = f.read().splitlines()
    tables, block = [], []
    for line in lines + ['']:
        if line.startswith('|'):
            block.append([c.strip() for c in line.strip().strip('|').split('|')])
            continue
        if len(block) > 2 and set(''.join(block[1])) <= set('-: '):
            tables.append([dict(zip(block[0], row)) for row in block[2:]])
        block = []
    return tables


def zoo_rows():
    """{config path: row} of the README tables whose rows link a config."""
    rows = {}
    for table in readme_tables():
        for row in table:
            links = [m for cell in row.values()
                     for m in re.findall(r'\]\((configs/[^)]+\.py)\)', cell)]
            if links:
                rows[links[0]] = row
    return rows


def test_index_imports_one_metafile_per_task(metafiles):
    assert sorted(metafiles) == [f'configs/{t}/metafile.yml' for t in sorted(TASKS)]
    for path in metafiles:
        assert osp.isfile(osp.join(REPO, path))


def test_schema(metafiles):
    for path, doc in metafiles.items():
        task = TASKS[path.split('/')[1]]
        collections = {c['Name']: c for c in doc['Collections']}
        for coll in collections.values():
            assert {'Name', 'Metadata', 'Paper', 'README', 'Code'} <= set(coll), coll['Name']
            assert PAPERS[coll['Paper']['URL']] in coll['Paper']['Title']
            assert {'Training Data', 'Training Techniques', 'Architecture'} <= \
                set(coll['Metadata'])
            assert osp.isfile(osp.join(REPO, coll['README']))
            assert osp.isfile(osp.join(REPO, coll['Code']['URL']))
        for model in doc['Models']:
            assert model['In Collection'] in collections, model['Name']
            assert model['Name'] == osp.splitext(osp.basename(model['Config']))[0]
            assert isinstance(model['Metadata']['Parameters'], int)
            assert isinstance(model['Metadata']['FLOPs'], int)
            for result in model['Results'] or []:
                assert result['Task'] == task
                assert all(isinstance(v, float) for v in result['Metrics'].values())


def test_every_config_named_exists(models):
    for config in models:
        assert osp.isfile(osp.join(REPO, config)), config


def test_every_non_demo_config_has_an_entry(models):
    configs = {osp.relpath(p, REPO) for task in TASKS
               for p in glob.glob(osp.join(REPO, 'configs', task, '*.py'))}
    assert configs and configs == set(models)


def rounded_like(value, text):
    """``value`` rounded to the decimals of ``text`` ('0.62', '163.3')."""
    decimals = len(text.split('.')[1]) if '.' in text else 0
    return round(value, decimals)


def test_numbers_equal_the_readme_tables(models):
    rows = zoo_rows()
    assert set(rows) == set(models)  # every table row has an entry and vice versa
    for config, row in rows.items():
        model = models[config]
        meta = model['Metadata']
        # published results: '–' in the README <-> no Results
        published = {METRIC_COLUMNS[c]: v for c, v in row.items() if c in METRIC_COLUMNS}
        if all(v in ('–', '-') for v in published.values()):
            assert model['Results'] is None, config
        else:
            (result, ) = model['Results']
            assert result['Metrics'] == {k: float(v) for k, v in published.items()}, config
        if 'params' in row:  # classification: exact count and GFLOPs with 4 decimals
            assert meta['Parameters'] == int(row['params'].replace(',', '')), config
            gflops = row['FLOPs'].split()[0]
            assert rounded_like(meta['FLOPs'] / 1e9, gflops) == float(gflops), config
        else:  # downstream: params in M truncated to one decimal; mmengine GFLOPs
            assert int(meta['Parameters'] / 1e5) / 10 == float(row['Params'].rstrip('M'))
            gflops = row['FLOPs (mmengine, measured)'].rstrip('G')
            assert rounded_like(meta['FLOPs'] / 1e9, gflops) == float(gflops), config


def test_readme_tables_are_parsed():
    """The parser sees the three zoo tables (so the comparison above is not vacuous)."""
    rows = zoo_rows()
    for task, count in (('classification', 4 + 6), ('detection', 8 + 16),
                        ('segmentation', 8 + 16)):
        assert sum(c.startswith(f'configs/{task}/') for c in rows) == count
