"""Networks people use for this work, as ordinary torch.nn.Modules (run through models/module_net.py).

Each factory takes (input_shape, num_classes); input_shape is (C, H, W) for images or (D,) for feature
vectors. Convolutions carry no bias and batch normalisation is affine, so with `--free-params frozen` the
mask methods see the non-affine batch normalisation of the supermask literature (scale 1, shift 0).

- resnet18: ResNet-18 in its CIFAR form (3x3 stem, no max-pool, global average pooling): any image of at
  least 8x8 pixels as it is, 28x28 Fashion-MNIST included.
- vgg11: VGG-11 in its CIFAR form (8 convolutions with batch norm, 5 max-pools, one linear layer): images
  smaller than 32x32 are padded to 32x32 by repeating their border pixels (five halvings need 32).
- mlp: two hidden layers of 200 units with ReLU (the "2NN" of federated-learning benchmarks) on the
  flattened input.
- torchvision:NAME: any classification model of torchvision, untrained; inputs with another number of
  channels than 3 have their channels repeated or averaged to 3, and images smaller than the smallest size
  the model accepts (the data's own size, else the first of 32, 64, 96, 128, 224 it runs on) are
  resized to it, bilinearly.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from raympl.errors import ConfigError


class BasicBlock(nn.Module):
    def __init__(self, inputs: int, outputs: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(outputs)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(outputs)
        self.shortcut = nn.Sequential()
        if stride != 1 or inputs != outputs:
            self.shortcut = nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        blocks, inputs = [], 64
        for outputs, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [BasicBlock(inputs, outputs, stride), BasicBlock(outputs, outputs, 1)]
            inputs = outputs
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(F.relu(self.bn1(self.conv1(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class PadTo(nn.Module):
    """Pads images smaller than `size` to size x size by repeating border pixels."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        dh, dw = max(0, self.size - h), max(0, self.size - w)
        if not dh and not dw:
            return x
        return F.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2), mode="replicate")


VGG11_PLAN = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


def vgg11(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    layers: list[nn.Module] = [PadTo(32)]
    channels = input_shape[0]
    for item in VGG11_PLAN:
        if item == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(channels, item, 3, padding=1, bias=False), nn.BatchNorm2d(item), nn.ReLU()]
            channels = item
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, num_classes))


def resnet18(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return ResNet18(input_shape[0], num_classes)


def mlp(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    features = int(torch.tensor(input_shape).prod())
    return nn.Sequential(nn.Flatten(), nn.Linear(features, 200), nn.ReLU(), nn.Linear(200, 200), nn.ReLU(),
                         nn.Linear(200, num_classes))


class ToImageNetInput(nn.Module):
    """3 channels (repeated from 1, averaged from others) at no less than `size` pixels, then the model."""

    def __init__(self, model: nn.Module, channels: int, size: int):
        super().__init__()
        self.model, self.channels, self.size = model, channels, size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels == 1:
            x = x.expand(-1, 3, -1, -1)
        elif self.channels != 3:
            x = x.mean(1, keepdim=True).expand(-1, 3, -1, -1)
        if min(x.shape[-2:]) < self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return self.model(x)


PROBE_SIZES = (32, 64, 96, 128, 224)
# torchvision models that return (logits, auxiliary logits) in training mode unless built without them
AUXILIARY_OUTPUTS = {"googlenet", "inception_v3"}


def torchvision_model(name: str) -> Callable[[tuple[int, ...], int], nn.Module]:
    import torchvision.models as tvm  # slow to import; only torchvision:NAME models need it

    if name not in tvm.list_models(module=tvm):
        raise ConfigError(f"invalid model 'torchvision:{name}': not a torchvision classification model "
                          "(see torchvision.models.list_models())")

    def build(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        if len(input_shape) != 3:
            raise ConfigError(f"invalid model 'torchvision:{name}': needs images, got inputs of shape "
                              f"{'x'.join(map(str, input_shape))}")
        extra = {"aux_logits": False} if name in AUXILIARY_OUTPUTS else {}
        model = tvm.get_model(name, weights=None, num_classes=num_classes, **extra)
        return ToImageNetInput(model, input_shape[0], smallest_size(model, name, min(input_shape[1:])))

    return build


def smallest_size(model: nn.Module, name: str, given: int) -> int:
    """The data's own size if the model runs on it (evaluation mode), else the smallest larger probe size."""
    model.eval()
    try:
        for size in [given] + [s for s in PROBE_SIZES if s > given]:
            try:
                with torch.no_grad():
                    model(torch.zeros(2, 3, size, size))
                return size
            except (RuntimeError, ValueError):
                continue
    finally:
        model.train()
    raise ConfigError(f"invalid model 'torchvision:{name}': runs on none of the sizes {given}, "
                      f"{', '.join(str(s) for s in PROBE_SIZES if s > given)}")


BUILT_IN: dict[str, Callable[[tuple[int, ...], int], nn.Module]] = {"resnet18": resnet18, "vgg11": vgg11, "mlp": mlp}
