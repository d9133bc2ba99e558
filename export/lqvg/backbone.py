"""ResNet-50 with frozen batch norm, returning layer2..layer4 (strides 8, 16, 32)."""
from torch import nn
from torchvision.models import resnet50
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.ops import FrozenBatchNorm2d

#: Output channels of layer2, layer3, layer4.
CHANNELS = (512, 1024, 2048)


def _half(n):
    """Output size of every stride-2 step of ResNet-50 (7x7/p3 conv, 3x3/p1 pool and convs, 1x1 shortcuts)."""
    return (n - 1) // 2 + 1


def level_shapes(image_size, levels=4):
    """(H, W) of the feature levels LQVG uses: strides 8, 16, 32 and the extra stride-2 conv on layer4."""
    n = image_size
    for _ in range(2):  # stem conv1, max-pool: stride 4
        n = _half(n)
    shapes = []
    for _ in range(levels):
        n = _half(n)
        shapes.append((n, n))
    return tuple(shapes)


class Backbone(nn.Module):
    """``body`` holds torchvision's resnet50 up to layer4 (no avgpool/fc), as in the official ``Backbone``.

    FrozenBatchNorm2d computes ``x * w * rsqrt(rv + 1e-5) + (b - rm * scale)``
    and drops ``num_batches_tracked`` when loading, like the official one.
    """

    def __init__(self):
        super().__init__()
        net = resnet50(weights=None, norm_layer=FrozenBatchNorm2d)
        self.body = IntermediateLayerGetter(net, return_layers={"layer2": "0", "layer3": "1", "layer4": "2"})

    def forward(self, image):
        return list(self.body(image).values())
