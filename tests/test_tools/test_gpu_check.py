"""tools/misc/gpu_check.sh: the CPU dry run of the GPU check runs every step (with
``tools/train.py --amp`` as bfloat16 autocast on the CPU) and stops at the first failure.

The script's tools run in forks of this process's pre-imported tool server
(``GPU_CHECK_TOOL=tests/tool_client.py``, served here on a Unix socket)."""
import glob
import json
import os
import os.path as osp
import resource
import socket
import subprocess
import sys
import threading
from contextlib import contextmanager

from helpers import REPO, start_tool

SCRIPT = osp.join(REPO, 'tools', 'misc', 'gpu_check.sh')
STEPS = ['env', 'ops', 'cls-train', 'cls-test', 'ssdlite-train', 'ssdlite-test',
         'retinanet-train', 'retinanet-test', 'deeplabv3-train', 'deeplabv3-test',
         'bench-fp32', 'bench-fp16', 'bench-train-amp']


@contextmanager
def tool_socket(path):
    """Serve ``tests/tool_client.py`` on the Unix socket ``path``: each request runs its
    tool through ``helpers.start_tool`` and answers its exit code."""
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen()

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:  # closed: the test is over
                return
            with conn:
                req = json.loads(conn.makefile().readline())
                env = {k: v for k, v in req['env'].items()  # start_tool sets these two
                       if k not in ('OMP_NUM_THREADS', 'PYTHONUNBUFFERED')}
                tool = start_tool(req['path'], *req['args'], stdout=req['out'],
                                  stderr=req['err'], cwd=req['cwd'], env=env)
                try:
                    rc = tool.wait(600)
                finally:
                    if tool.returncode is None:
                        tool.kill()
                        tool.wait(60)
                        rc = -9
                conn.sendall((json.dumps(dict(rc=rc)) + '\n').encode())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.close()
        thread.join(5)


def cpu_seconds():
    """CPU time (user + system) of this process's children and of the tool server's."""
    import helpers
    t = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = t.ru_utime + t.ru_stime
    server = helpers._SERVER
    if server is not None and server.poll() is None:
        with open(f'/proc/{server.pid}/stat') as f:
            fields = f.read().rsplit(')', 1)[1].split()
        total += sum(int(v) for v in fields[11:15]) / os.sysconf('SC_CLK_TCK')
    return total


def gpu_check(tmp_path, *args, **env):
    sock = str(tmp_path / 'tools.sock')
    env = dict(os.environ, **env, PYTHON=sys.executable, EMO_TOOL_SOCKET=sock,
               GPU_CHECK_TOOL=f'{sys.executable} {osp.join(REPO, "tests", "tool_client.py")}')
    with tool_socket(sock):
        cpu = cpu_seconds()
        proc = subprocess.run(['bash', SCRIPT, '--work', str(tmp_path / 'work'), *args],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
        print(f'gpu_check.sh {" ".join(args)}: {cpu_seconds() - cpu:.1f} s of CPU')
    return proc


def test_dry_run_runs_every_step(demo_data_root, tmp_path):
    proc = gpu_check(tmp_path, '--dry-run', '--data', demo_data_root)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    work = tmp_path / 'work'
    summary = (work / 'summary.txt').read_text()
    for name in STEPS:
        assert f'step {name}: ok' in summary, name
    assert 'gpu_check: all steps passed' in summary
    assert 'DRY RUN (CPU)' in summary and 'torch ' in summary and 'mmcv 2.1.0' in summary
    assert 'nms (cpu): keeps the same' in summary
    # --amp without a GPU: bfloat16 autocast, and the run saved its checkpoint
    log = (work / 'cls-train.log').read_text()
    assert '--amp without a GPU: bfloat16 autocast on the CPU' in log
    dumped = sorted(glob.glob(str(work / 'cls' / '*' / 'vis_data' / 'config.py')))
    assert "type='CPUAutocastOptimWrapper'" in open(dumped[0]).read()  # the training's
    # every task was tested on its checkpoint: metrics of the right kind
    metrics = {t: json.loads((work / t / 'test_metrics.json').read_text())
               for t in ('cls', 'ssdlite', 'retinanet', 'deeplabv3')}
    assert 0 <= metrics['cls']['accuracy/top1'] <= 100
    assert 0 <= metrics['deeplabv3']['mIoU'] <= 100
    for t in ('ssdlite', 'retinanet'):  # a tiny run may detect nothing: then no mAP
        assert all(k.startswith('coco/bbox_mAP') for k in metrics[t]), metrics[t]
    # the benchmark: one row per model and mode, in the summary's figures too
    for name in ('bench-fp32', 'bench-fp16', 'bench-train-amp'):
        rows = json.loads((work / f'{name}.json').read_text())['rows']
        assert [r['name'] for r in rows] == ['emo-1m_8xb256_in1k',
                                            'edgenext-xxsmall_3rdparty_in1k',
                                            'mobilenet-v3-large_8xb128_in1k']
        assert all(r['throughput']['median'] > 0 for r in rows)
        assert f'  {name}:' in summary
    assert summary.count('| emo-1m_8xb256_in1k |') >= 3  # its tables, in each section


def test_stops_at_the_first_failure_with_its_log(tmp_path):
    # without --dry-run and without a GPU (hidden, should there be one) the first step
    # fails: nothing else runs
    proc = gpu_check(tmp_path, CUDA_VISIBLE_DEVICES='')
    assert proc.returncode == 1
    assert '[gpu_check] env            FAILED' in proc.stdout
    assert 'sees no GPU' in proc.stdout  # the end of env.log, printed
    summary = (tmp_path / 'work' / 'summary.txt').read_text()
    assert 'step env: FAILED' in summary and 'step ops' not in summary
