"""tools/analysis/benchmark.py: runs end to end on tiny settings (subprocesses) and
writes rows whose ratios are the throughput over their reference's (the rows of
``--reference tests/reference_emo.py``, else the first row); bad options fail naming the
problem."""
import json

import pytest
from helpers import load_tool, run_tool

from emo.apis.launch import load_config

CLS = 'configs/classification/emo-1m_8xb256_in1k.py'
DET = 'configs/detection/ssdlite_emo-1m_8xb24-600e_coco.py'
SEG = 'configs/segmentation/deeplabv3_emo-1m_8xb4-80k_ade20k-512x512.py'
TINY = ['--shape', '64', '64', '--batch-size', '2', '--rounds', '2', '--warmup', '1',
        '--iters', '1', '--latency-iters', '1', '--threads', '1']
REF = ['--reference', 'tests/reference_emo.py']  # the literal released network


def bench(tmp_path, *args):
    out = tmp_path / 'bench.json'
    proc = run_tool('tools/analysis/benchmark.py', *args, '--out', str(out))
    result = json.loads(out.read_text())
    return proc, result, {(r['name'], r['backend']): r for r in result['rows']}


def check_rows(result, latency=True, reference=True):
    """Every row has its figures, its reference row (the first row of its backend
    without ``--reference``), and ratios = median / reference."""
    rows = {(r['name'], r['backend']): r for r in result['rows']}
    rounds = result['args']['rounds']
    for r in result['rows']:
        ref = rows[(r['reference'], r['backend'])]
        if reference:
            assert ref['kind'] == 'reference'
        else:
            assert ref is next(x for x in result['rows'] if x['backend'] == r['backend'])
        assert r['flops'] > 0
        t = r['throughput']
        assert len(t['rounds']) == rounds and all(v > 0 for v in t['rounds'])
        assert t['min'] <= t['median'] <= t['max']
        assert r['x_reference']['throughput'] == pytest.approx(
            t['median'] / ref['throughput']['median'])
        if latency:
            assert r['latency_ms']['min'] > 0 and len(r['latency_ms']['rounds']) == rounds
            assert r['x_reference']['latency'] == pytest.approx(
                ref['latency_ms']['median'] / r['latency_ms']['median'])
        else:
            assert r['latency_ms'] is None and r['x_reference']['latency'] is None
    assert result['machine']['torch_threads'] == 1 and result['machine']['cpu']


def test_classifier_with_peers(tmp_path):
    proc, result, rows = bench(
        tmp_path, CLS, *TINY, *REF, '--peers', 'mobilenet-v3-small-050_3rdparty_in1k',
        'mmpretrain::mobilenet_v3/mobilenet-v3-small-075_8xb128_in1k.py')
    check_rows(result)
    assert [r['kind'] for r in result['rows']] == ['reference', 'config', 'peer', 'peer']
    ref = rows[('reference EMO-1M', 'pytorch')]
    emo = rows[('emo-1m_8xb256_in1k', 'pytorch')]
    assert ref['params'] == emo['params'] == 1361168  # the same network, twice
    assert emo['reference'] == 'reference EMO-1M' and emo['shape'] == [64, 64]
    peer = rows[('mobilenet-v3-small-050_3rdparty_in1k', 'pytorch')]
    assert peer['reference'] == 'reference EMO-1M'  # peers: the first EMO's reference
    assert rows[('mobilenet-v3-small-075_8xb128_in1k', 'pytorch')]['params'] > peer['params']
    assert emo['output_dtype'] == 'torch.float32'
    # the markdown table: a header and one line per row, each with its input size
    text = proc.stdout.split('\n\n')
    table = [line for line in text[1].splitlines() if line.startswith('| ')]
    assert len(table) == 1 + 4 and 'reference EMO-1M' in table[1]
    assert all('| 64x64 |' in line for line in table[1:])
    # then each model's fastest form, and EMO-1M / each peer (one row per peer)
    assert 'Fastest form of each model' in proc.stdout
    ratios = [line for line in proc.stdout.split('/ peer,')[1].splitlines()
              if line.startswith('| mobilenet')]
    assert len(ratios) == 2
    # the FLOP counter's warnings are one line
    assert proc.stderr.count('FLOP counter: ops counted as zero') == 1
    assert 'Unsupported operator' not in proc.stderr


def test_training_steps_with_amp(tmp_path):
    _, result, rows = bench(tmp_path, CLS, *TINY, *REF, '--train', '--amp')
    check_rows(result, latency=False)  # training: throughput only
    for r in result['rows']:
        assert r['output_dtype'] == 'torch.bfloat16'  # autocast reached the logits


def test_channels_last_and_deploy(tmp_path):
    proc, result, rows = bench(tmp_path, CLS, *TINY, *REF, '--channels-last', '--deploy',
                               '--peers', 'mobilenet-v3-small-050_3rdparty_in1k')
    check_rows(result)
    ref = rows[('reference EMO-1M', 'pytorch')]
    emo = rows[('emo-1m_8xb256_in1k', 'pytorch')]
    # folded BatchNorms: fewer parameters than the literal network, which stays as it is
    assert emo['deploy'] is True and emo['params'] < ref['params'] == 1361168
    peer = rows[('mobilenet-v3-small-050_3rdparty_in1k', 'pytorch')]
    assert peer['deploy'] is False and peer['note'] == 'no deploy form'
    assert 'channels-last, deploy' in proc.stdout


def test_detection_and_segmentation_backbones(tmp_path):
    _, result, rows = bench(tmp_path, DET, SEG, *TINY, *REF)
    check_rows(result)
    assert [r['kind'] for r in result['rows']] == ['reference', 'config', 'config']
    ref = rows[('reference EMO-1M [backbone]', 'pytorch')]  # window 7 for both configs
    for name in ('ssdlite_emo-1m_8xb24-600e_coco [backbone]',
                 'deeplabv3_emo-1m_8xb4-80k_ade20k-512x512 [backbone]'):
        row = rows[(name, 'pytorch')]
        assert row['part'] == 'backbone' and row['reference'] == ref['name']
        assert row['params'] == ref['params']  # the backbone, without the head


def test_whole_detector_at_its_test_size(tmp_path):
    _, result, rows = bench(tmp_path, DET, *REF, '--part', 'model', '--batch-size', '1',
                            '--rounds', '1', '--warmup', '0', '--iters', '1',
                            '--no-latency', '--threads', '1')
    check_rows(result, latency=False)
    row = rows[('ssdlite_emo-1m_8xb24-600e_coco [model]', 'pytorch')]
    assert row['shape'] == [320, 320]  # the config's test scale
    assert row['params'] == 2311980  # the whole SSDLite-EMO-1M (README table)


def test_onnxruntime_next_to_pytorch(tmp_path):
    _, result, rows = bench(tmp_path, CLS, *TINY, *REF, '--deploy', '--backend', 'pytorch',
                            'onnxruntime')
    check_rows(result)
    assert sorted(rows) == sorted((n, b) for n in ('reference EMO-1M', 'emo-1m_8xb256_in1k')
                                  for b in ('pytorch', 'onnxruntime'))
    ort = rows[('emo-1m_8xb256_in1k', 'onnxruntime')]
    assert ort['reference'] == 'reference EMO-1M'  # ratio to the exported reference
    assert ort['output_dtype'] == 'numpy.float32'
    assert result['machine']['onnxruntime']


def test_without_reference_rows_are_compared_with_the_first(tmp_path):
    proc, result, rows = bench(tmp_path, CLS, *TINY, '--peers',
                               'mobilenet-v3-small-050_3rdparty_in1k')
    check_rows(result, reference=False)
    assert [r['kind'] for r in result['rows']] == ['config', 'peer']
    emo = rows[('emo-1m_8xb256_in1k', 'pytorch')]
    assert emo['reference'] == 'emo-1m_8xb256_in1k' and emo['x_reference']['throughput'] == 1
    # the classifier's FLOPs at 64x64, as tools/analysis/get_flops.py counts them
    flops = load_tool('tools/analysis/get_flops.py').count(load_config(CLS), (64, 64))
    assert emo['flops'] == flops['flops'] and emo['params'] == flops['params']
    assert 'no --reference' in proc.stdout


def test_published_size(tmp_path):
    """--published: the peer also at its config's test crop (224 for this one), beside
    --shape, each row with its input and its FLOPs."""
    proc, result, _ = bench(tmp_path, CLS, *TINY, '--no-latency', '--published',
                            '--peers', 'mobilenet-v3-small-050_3rdparty_in1k')
    rows = {(r['name'], tuple(r['shape'])): r for r in result['rows']}
    peer = 'mobilenet-v3-small-050_3rdparty_in1k'
    assert sorted(rows) == sorted([('emo-1m_8xb256_in1k', (64, 64)), (peer, (64, 64)),
                                   (peer, (224, 224))])
    big, small = rows[(peer, (224, 224))], rows[(peer, (64, 64))]
    assert 'published size' in big['note'] and 'published' not in small['note']
    assert big['flops'] > 5 * small['flops']  # 12x the pixels; the head is fixed
    assert '| 224x224 |' in proc.stdout and 'Fastest form of each model' in proc.stdout


def test_cost_against_size_and_batch(tmp_path):
    """--sizes / --batches: every model at batch 1 at each size and at each batch at
    --shape, the time per pixel derived from the median, a peak memory, and the plot."""
    plot = tmp_path / 'scaling.png'
    proc, result, _ = bench(tmp_path, CLS, '--peers', 'mobilenet-v3-small-050_3rdparty_in1k',
                            '--sizes', '32', '48x80', '--batches', '1', '3', '--shape', '32',
                            '--rounds', '2', '--iters', '1', '--threads', '1', '--deploy',
                            '--plot', str(plot))
    rows = result['rows']
    points = [(r['name'], r['batch'], tuple(r['shape'])) for r in rows]
    assert len(points) == len(set(points)) == 2 * 3  # (1, 32x32) is one point of both
    for r in rows:
        ms = r['ms_per_pass']
        assert len(ms['rounds']) == 2 and ms['min'] <= ms['median'] <= ms['max']
        h, w = r['shape']
        assert r['ns_per_pixel'] == pytest.approx(1e6 * ms['median'] / (r['batch'] * h * w))
        assert r['img_per_s'] == pytest.approx(1000 * r['batch'] / ms['median'])
        assert r['peak_memory_mib'] is not None and r['peak_memory_mib'] >= 0
    emo = {(r['batch'], tuple(r['shape'])): r for r in rows if r['kind'] == 'config'}
    assert emo[(1, (48, 80))]['flops'] > 1.5 * emo[(1, (32, 32))]['flops']
    assert emo[(3, (32, 32))]['flops'] == emo[(1, (32, 32))]['flops']  # per image
    assert 'Batch 1 against the input size' in proc.stdout
    assert 'Against the batch at 32x32' in proc.stdout
    assert plot.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_bad_options_fail_clearly(monkeypatch, capsys, tmp_path):
    tool = load_tool('tools/analysis/benchmark.py')
    # --deploy on a config whose backbone cannot re-parameterize: named, before timing
    cfg = tmp_path / 'resnet18.py'
    cfg.write_text("_base_ = ['mmpretrain::_base_/models/resnet18.py']\n"
                   "default_scope = 'mmpretrain'\n")
    with pytest.raises(ValueError, match=f'--deploy: the ResNet backbone of {cfg} has no '
                       r'switch_to_deploy\(\)'):
        tool.main([str(cfg), '--deploy', *TINY[:-2]])  # no --threads: this process
    monkeypatch.setattr(tool.torch.cuda, 'is_available', lambda: False)

    def error(*argv):
        with pytest.raises(SystemExit):
            tool.get_args(list(argv))
        return capsys.readouterr().err

    assert 'torch.cuda.is_available() is False' in error(CLS, '--device', 'cuda')
    assert '--train applies to --backend pytorch only' in error(
        CLS, '--train', '--backend', 'onnxruntime')
    assert '--deploy is an inference form' in error(CLS, '--train', '--deploy')
    assert 'config file not found: nope.py' in error('nope.py')
    assert 'give at least one CONFIG' in error()
    assert '--shape takes H W' in error(CLS, '--shape', '1', '2', '3')
    assert '--reference: no Python file nope.py' in error(CLS, '--reference', 'nope.py')
    assert '--sizes takes N or HxW' in error(CLS, '--sizes', '224', 'big')
    assert 'time the torch forms' in error(CLS, '--sizes', '224', '--backend', 'onnxruntime')
    assert '--plot draws the table of --sizes' in error(CLS, '--plot', 'x.png')
    not_a_reference = tmp_path / 'empty.py'
    not_a_reference.write_text('')
    with pytest.raises(AttributeError, match=f'{not_a_reference}: the file defines no '
                       'ReferenceEMO'):
        tool.main([CLS, '--reference', str(not_a_reference), *TINY[:-2]])
