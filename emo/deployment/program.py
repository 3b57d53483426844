"""``torch.export`` of the task wrappers: the ``ExportedProgram`` that the
torch.export-based runtimes start from (the ONNX dynamo exporter, ExecuTorch, OpenVINO,
Core ML).

Shapes: the batch axis is dynamic (``torch.export.Dim``), H and W are fixed at the
exported size. EMO's window attention reshapes a map of (n * window) rows into
(window, n) and crops the padding back off; ``torch.export``'s symbolic shape solver
cannot prove those reshapes and crops valid for every H and W (it asks for guards such
as ``n != 1`` and ``H <= 7 * ceil(H / 7)`` that it cannot discharge), so a dynamic H/W
export of EMO fails with a constraint violation. Graphs that need dynamic H and W come
from the TorchScript ONNX exporter (``export_onnx(..., dynamo=False)``), which records
the shape arithmetic as graph ops; OpenVINO converts that ONNX file with its dynamic
axes.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn

from .registry import MAX_BATCH

__all__ = ['prepare_for_export', 'export_program', 'batch_dim']


def prepare_for_export(module: nn.Module) -> nn.Module:
    """Put ``module`` in the form the exporters take, in place: eval mode, no gradients,
    parameters in the contiguous (NCHW) memory format and every ``channels_last``
    backbone option off. Outputs are unchanged (memory layout only).

    XNNPACK's ``ChannelsLastTaggedReshapePass`` rejects weights stored channels_last
    (what EMO's ``channels_last=True`` training option makes) with "Expected ... to be
    NCHW"; the other runtimes choose their own layouts anyway."""
    module.eval().requires_grad_(False)
    module.to(memory_format=torch.contiguous_format)
    for m in module.modules():
        if getattr(m, 'channels_last', False) is True:
            m.channels_last = False
    return module


def batch_dim(max_batch: int = MAX_BATCH):
    """The dynamic batch axis: ``torch.export.Dim('batch', min=1, max=max_batch)``."""
    return torch.export.Dim('batch', min=1, max=int(max_batch))


def export_program(module: nn.Module,
                   shape: Tuple[int, int],
                   dynamic_batch: bool = True,
                   max_batch: int = MAX_BATCH,
                   example: Optional[torch.Tensor] = None) -> 'torch.export.ExportedProgram':
    """``torch.export.export`` of ``module`` (B, 3, H, W) -> tensors at H, W = ``shape``
    (after :func:`prepare_for_export`, in place), batch dynamic in [1, ``max_batch``]
    unless ``dynamic_batch=False`` (then batch 1).

    The example batch is 2 (``torch.export`` specializes an axis whose example size is
    1); pass ``example`` to choose it."""
    prepare_for_export(module)
    h, w = (int(s) for s in shape)
    if example is None:
        example = torch.randn(2 if dynamic_batch else 1, 3, h, w)
    # by position: the wrappers' forward arguments have different names
    dynamic_shapes = ({0: batch_dim(max_batch)}, ) if dynamic_batch else None
    with torch.no_grad():
        return torch.export.export(module, (example, ), dynamic_shapes=dynamic_shapes)
