"""Shared fixtures. pytest puts this folder on sys.path, so tests can import
``reference_emo`` (the literal reference network) and ``helpers`` directly.

Under pytest-xdist (``make test`` runs ``-n 2``) every worker computes with one thread,
and what is expensive to make (the demo data, the tiny demo trainings) is made once per
test run in a folder shared by the workers (``helpers.shared_dir``), not once per
worker."""
import os
import os.path as osp
import subprocess
import sys

import pytest

WORKER = os.environ.get('PYTEST_XDIST_WORKER')
THREADS = int(os.environ.get('EMO_TEST_THREADS', '1'))
if WORKER:  # two workers on two cores: one thread each (set before torch is imported)
    for var in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
        os.environ[var] = str(THREADS)

from helpers import shared_dir  # noqa: E402 (imports torch)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.fixture(scope='session')
def demo_data_root(tmp_path_factory):
    """All demo data sets (imagenet/, coco/, ade/), generated once per test run."""

    def make(out):
        subprocess.run([sys.executable, osp.join(REPO, 'tools/misc/make_demo_data.py'), out],
                       check=True, capture_output=True)

    return shared_dir(tmp_path_factory, 'demo_data', make)


@pytest.fixture(scope='module')
def single_thread():
    """torch on one thread for a module (``pytestmark = pytest.mark.usefixtures(...)``):
    on a busy 2-core machine two OpenMP threads per process can be ten times slower than
    one (they wait on each other); on an idle one the difference is small.
    ``EMO_TEST_THREADS=2``: two threads."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(threads)


# The comparison helpers that make a test numerical (its result depends on the CPU's
# kernels): a test that calls one, directly or through a function of its module, is
# marked ``numerical`` (``make test`` runs those again with a lesser CPU capability
# forced); ``@pytest.mark.numerical`` marks others.
NUMERICAL_HELPERS = ('accumulation_length', 'float32_bound', 'assert_close_derived',
                     'decisions_equal_outside_ties', 'detections_equal_outside_ties')


def _calls_any(func, names):
    import inspect
    try:
        source = inspect.getsource(func)
    except (OSError, TypeError):
        return False
    return any(f'{name}(' in source for name in names)


def pytest_configure(config):
    # Known upstream noise of this stack (torch 2.5 torch.load default, mmengine imports).
    for line in ('ignore:You are using `torch.load`:FutureWarning',
                 'ignore::DeprecationWarning'):
        config.addinivalue_line('filterwarnings', line)
    if WORKER:
        import torch
        torch.set_num_threads(THREADS)


# Scheduling on xdist workers (make test: --dist loadfile --no-loadscope-reorder): a
# file's tests run on one worker, so that its module fixtures run once, except in SPLIT
# files (heavy tests that share nothing: spread over the workers); files run in the order
# of HEAVY_FIRST (the slowest first, as measured: longest first keeps the two workers'
# loads even, with only short files left for the end), then in collection order.
SPLIT = ('test_tools/test_dist_cpu.py', 'test_tools/test_resume.py')
HEAVY_FIRST = ('test_deployment/test_runtimes.py', 'test_deployment/test_quantize.py',
               'test_tools/test_dist_cpu.py', 'test_tools/test_resume.py',
               'test_deployment/test_onnx.py', 'test_tools/test_benchmark.py',
               'test_tools/test_deployment_tools.py', 'test_configs/test_detection_configs.py',
               'test_tools/test_bad_inputs.py',
               'test_tools/test_make_demo_data.py', 'test_patches.py',
               'test_configs/test_segmentation_configs.py', 'test_tools/test_analyze_logs.py',
               'test_tools/test_browse_dataset.py')


def _module_path(nodeid):
    return nodeid.split('::')[0].split('tests/', 1)[-1]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """--dist loadfile, with the tests of SPLIT files scheduled one by one."""
    if config.getoption('dist') != 'loadfile':
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FileScheduling(LoadScopeScheduling):

        def _split_scope(self, nodeid):
            path = nodeid.split('::')[0]
            return nodeid if _module_path(nodeid) in SPLIT else path

    return FileScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    import inspect

    import helpers
    rank = {path: i for i, path in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(_module_path(item.nodeid), len(rank)))
    numerical = {}  # module -> names whose call makes a test numerical
    for item in items:
        module = getattr(item, 'module', None)
        if module is None:
            continue
        if module not in numerical:
            names = [n for n in NUMERICAL_HELPERS
                     if getattr(module, n, None) is getattr(helpers, n)]
            if names:
                names += [n for n, f in vars(module).items() if inspect.isfunction(f) and
                          f.__module__ == module.__name__ and _calls_any(f, names)]
            numerical[module] = names
        if numerical[module] and _calls_any(item.function, numerical[module]):
            item.add_marker(pytest.mark.numerical)
