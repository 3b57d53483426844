"""The backend registry (emo.deployment.registry): every tool's choices come from it, a
file picks its runtime by extension, and a model file that is missing, empty, foreign or
truncated is a ModelFileError naming the file and the problem, for every runtime, never
a process abort or the runtime's raw error; an input the file cannot take is an
InputSizeError that says the file's size and how to choose another.

The files here are tiny (an ONNX graph written with ``onnx.helper``, random bytes,
folders); the truncated ExecuTorch and OpenVINO files are cut from the shared exports
of test_runtimes.py."""
import os.path as osp
import random
import shutil

import numpy as np
import pytest
import torch
from helpers import REPO, load_tool, run_tool

from emo.deployment import (BACKENDS, InputSizeError, ModelFileError, backend_for_file,
                            get_backend, load_runtime, register_backend)
from emo.deployment.registry import Backend

# the bytes that made ExecuTorch's loader abort the process (exit 134): a non-UTF-8
# "file identifier" at bytes 4-8, which its C++ log line could not decode
JUNK = bytes([0, 0, 0, 0, 0xe5, 0x9c, 0xff, 0x80]) + bytes(
    random.Random(0).getrandbits(8) for _ in range(4000))


def tiny_onnx(path, shape=(1, 3, 8, 8)):
    """An ONNX file y = relu(x) with a fixed input shape, written without an exporter."""
    import onnx
    from onnx import TensorProto, helper
    graph = helper.make_graph(
        [helper.make_node('Relu', ['input'], ['out'])], 'tiny',
        [helper.make_tensor_value_info('input', TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info('out', TensorProto.FLOAT, list(shape))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


def test_registry_names_extensions_and_tools():
    assert {'onnxruntime', 'executorch', 'openvino', 'coreml'} <= set(BACKENDS)
    assert backend_for_file('a/m.pte').name == 'executorch'
    assert backend_for_file('m.onnx').name == 'onnxruntime'  # openvino runs it on request
    assert get_backend('onnx') is BACKENDS['onnxruntime']  # pytorch2onnx.py's name
    with pytest.raises(ValueError, match="unknown backend 'tflite'"):
        get_backend('tflite')
    with pytest.raises(KeyError, match='.pte files are'):
        register_backend(Backend('other', ('.pte', ), 'x', 'X', 'y'))
    assert 'other' not in BACKENDS  # nothing registered by the failed call
    # the export tool takes its --backend choices from the registry
    help_text = load_tool('tools/deployment/export.py').get_parser().format_help()
    assert all(b.name in help_text and b.summary in ' '.join(help_text.split())
               for b in BACKENDS.values())


def test_onnx_file_refusals(tmp_path):
    good = tiny_onnx(tmp_path / 'good.onnx')
    cut = tmp_path / 'cut.onnx'
    cut.write_bytes(open(good, 'rb').read()[:40])
    empty, junk = tmp_path / 'empty.onnx', tmp_path / 'junk.onnx'
    empty.write_bytes(b'')
    junk.write_bytes(JUNK)
    for path, problem in ((cut, 'truncated'), (empty, 'is empty'), (junk, 'not an ONNX')):
        for backend in ('onnxruntime', 'openvino'):
            with pytest.raises(ModelFileError, match=problem if backend == 'onnxruntime'
                               else 'OpenVINO cannot read') as e:
                load_runtime(str(path), backend=backend)
            assert e.value.path == str(path) and 'export it again' in str(e.value)
            assert 'INVALID_PROTOBUF' not in str(e.value)
    with pytest.raises(FileNotFoundError, match='nothere.onnx'):
        load_runtime(str(tmp_path / 'nothere.onnx'))
    # a size the file cannot take: its size named, and how to choose another
    runtime = load_runtime(good)
    assert runtime.input_hw == (8, 8) and runtime.output_names == ['out']
    x = torch.randn(1, 3, 8, 8)
    np.testing.assert_array_equal(runtime(x)[0].numpy(), x.clamp_min(0).numpy())
    with pytest.raises(InputSizeError, match=r'takes H, W = \[8, 8\].*--shape 4 6'):
        runtime(torch.randn(1, 3, 4, 6))
    with pytest.raises(InputSizeError, match='exactly 1 images'):
        runtime(torch.randn(2, 3, 8, 8))


def test_executorch_and_openvino_file_refusals(tmp_path):
    """Foreign, empty and header-truncated files, checked before ExecuTorch sees them,
    and a damaged IR (OpenVINO's parser) or missing weights, each named."""
    (tmp_path / 'junk.pte').write_bytes(JUNK)
    (tmp_path / 'empty.pte').write_bytes(b'')
    # a valid header that records 4368 bytes (program + segments) on a 100-byte file
    header = (bytes(4) + b'ET12' + b'eh00' + (32).to_bytes(4, 'little') +
              (1464).to_bytes(8, 'little') + (1536).to_bytes(8, 'little') +
              (2832).to_bytes(8, 'little'))
    (tmp_path / 'cut.pte').write_bytes(header + bytes(60))
    for name, problem in (('junk.pte', 'no ExecuTorch flatbuffer identifier'),
                          ('empty.pte', r'\(0 bytes'),
                          ('cut.pte', 'is truncated: 100 bytes, its header records 4368')):
        with pytest.raises(ModelFileError, match=problem) as e:
            load_runtime(str(tmp_path / name))
        assert e.value.path == str(tmp_path / name)
    (tmp_path / 'junk.xml').write_bytes(b'<?xml version="1.0"?><net name="x" version="11">')
    (tmp_path / 'junk.bin').write_bytes(b'')
    (tmp_path / 'alone.xml').write_bytes(b'<net')
    for name in ('junk.xml', 'alone.xml'):
        with pytest.raises(ModelFileError, match='OpenVINO cannot read it.*export it'):
            load_runtime(str(tmp_path / name))


def test_coreml_package_refusals(tmp_path):
    folder = tmp_path / 'no.mlpackage'
    folder.mkdir()
    with pytest.raises(ModelFileError, match='no.mlpackage: is not a Core ML package'):
        load_runtime(str(folder))
    shutil.copytree(folder, tmp_path / 'bad.mlpackage')
    (tmp_path / 'bad.mlpackage' / 'Manifest.json').write_text('{"fileFormatVersion": ')
    with pytest.raises(ModelFileError, match='bad.mlpackage: its Manifest.json is damaged'):
        load_runtime(str(tmp_path / 'bad.mlpackage'))


def test_inference_tool_refuses_a_foreign_pte_with_an_error(tmp_path):
    """The case that aborted the process (exit 134): now a named error, exit 1."""
    junk = tmp_path / 'model.pte'
    junk.write_bytes(JUNK)
    cfg = osp.join(REPO, 'configs/demo/emo-1m_demo_cls.py')
    proc = run_tool('tools/deployment/inference.py', junk, cfg, cfg, check=False)
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-2000:])
    assert f'{junk}: is not an ExecuTorch program' in proc.stderr


def test_export_size_rule():
    """--shape, else the size the test pipeline makes every image, else the calibration
    images' shared size, else the config's test size."""
    from mmengine.config import Config

    from emo.deployment import export_size
    cfg = Config.fromfile(osp.join(REPO, 'configs/demo/emo-1m_demo_cls.py'))
    one = [torch.zeros(1, 3, 48, 40)]
    assert export_size(cfg) == (64, 64)  # its centre crop
    assert export_size(cfg, (32, )) == (32, 32) and export_size(cfg, (32, 48)) == (32, 48)
    assert export_size(cfg, None, one) == (64, 64)  # the pipeline decides before images
    # a user's classifier whose test pipeline keeps its images as they are
    cfg.test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
    assert export_size(cfg, None, one * 2) == (48, 40)
    mixed = one + [torch.zeros(1, 3, 64, 64)]
    assert export_size(cfg, None, mixed) == (224, 224)  # no shared size: the test size
    seg = Config.fromfile(osp.join(REPO, 'configs/demo/deeplabv3_emo-1m_demo_ade20k.py'))
    assert export_size(seg, None, one) == (48, 40)  # a keep-ratio resize fixes no size
    det = Config.fromfile(osp.join(REPO, 'configs/demo/ssdlite_emo-1m_demo_coco.py'))
    assert export_size(det, None, one) == (128, 128)  # Resize keep_ratio=False
