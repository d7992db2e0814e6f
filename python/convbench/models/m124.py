"""M124 coursework 4 networks (spec section 3, report 004), CIFAR-10 colour 3x32x32."""
from __future__ import annotations

from .stack import cnn_net, mlp_net


def _lenet(c1: int, c2: int, fc):
    """[Conv3x3xc1, act, pool, Conv3x3xc2, act, pool] -> FC... -> classes ("LeNet-5" in the report)."""
    return cnn_net(lambda s: s.conv(c1, 3).pool().conv(c2, 3).pool(), fc)


mlp = mlp_net((512, 512, 256))
mlp_wide = mlp_net((512, 512, 512))
mlp_narrow = mlp_net((256, 256, 256))
cnn = _lenet(16, 32, (512, 256))
cnn_32_64 = _lenet(32, 64, (512, 256))
cnn_64_128 = _lenet(64, 128, (512, 256))
cnn_64_128_fc512 = _lenet(64, 128, (512, 512))
