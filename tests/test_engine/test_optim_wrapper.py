"""emo.engine.CPUAutocastOptimWrapper: bfloat16 autocast in the forward, float32 updates."""
import pytest
import torch
import torch.nn as nn
from mmengine.optim import build_optim_wrapper

from emo.engine import CPUAutocastOptimWrapper


def small_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))


def test_forward_autocasts_and_the_update_stays_float32():
    net = small_net()
    wrapper = build_optim_wrapper(net, dict(type='CPUAutocastOptimWrapper',
                                            optimizer=dict(type='SGD', lr=0.1)))
    assert isinstance(wrapper, CPUAutocastOptimWrapper)
    assert wrapper.cast_dtype is torch.bfloat16
    assert not hasattr(wrapper, 'loss_scaler')  # bfloat16: nothing to scale
    x, y = torch.randn(4, 3, 12, 12), torch.tensor([0, 1, 2, 3])
    before = [p.detach().clone() for p in net.parameters()]
    with wrapper.optim_context(net):
        conv_out = net[0](x)
        loss = nn.functional.cross_entropy(net(x), y)
    assert conv_out.dtype == torch.bfloat16  # autocast ran the convolution in bfloat16
    assert net(x).dtype == torch.float32  # and only inside the context
    wrapper.update_params(loss)
    for p, p0 in zip(net.parameters(), before):
        assert p.dtype == torch.float32 and not torch.equal(p, p0)


def test_float16_and_bad_dtypes():
    net = small_net()
    wrapper = CPUAutocastOptimWrapper(
        dtype='float16', optimizer=torch.optim.SGD(net.parameters(), lr=0.1))
    with wrapper.optim_context(net):
        assert net[0](torch.randn(1, 3, 8, 8)).dtype == torch.float16
    with pytest.raises(ValueError, match="dtype must be 'bfloat16' or 'float16', got 'int8'"):
        CPUAutocastOptimWrapper(dtype='int8',
                                optimizer=torch.optim.SGD(net.parameters(), lr=0.1))
