"""The PyTorch reference models, once: the reports' MLP, Lab D's CNN and the CIFAR ResNet20, as
the reports (and akamaster/pytorch_resnet_cifar10) wrote them. The benchmark times them, the
crosscheck trains them, ``tests/make_references.py`` stores their outputs for the parity tests.

Only torch is imported (no jax): ``python tests/make_references.py`` runs with torch alone. The
module and parameter names are the state_dict keys the stored references and
:func:`jaxlabs.interop.from_torch` read, so a rename here is a change of the reference files.
Every layer keeps PyTorch's default initialisation; the creation order of the layers is the
order of the random draws, so it is part of every seeded result too.

    python -c "from experiments.torch_models import CifarResNet; print(sum(p.numel() for p in CifarResNet().parameters()))"
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn


class FeedforwardNN(nn.Module):
    """The reports' MLP (Lab A's ``FeedforwardNN``): fc1, ``num_layers - 1`` hidden layers, fc2,
    ``activation`` after every hidden layer (SiLU in Lab A; ReLU for Labs E and G's 784-H-10)."""

    def __init__(self, input_size=1, hidden_size=64, num_layers=4, output_size=1, activation=nn.SiLU):
        super().__init__()
        self.fc1 = nn.Linear(input_size, hidden_size)
        self.hidden_layers = nn.ModuleList([nn.Linear(hidden_size, hidden_size) for _ in range(num_layers - 1)])
        self.fc2 = nn.Linear(hidden_size, output_size)
        self.act = activation()

    def forward(self, x):  # (batch, ...) -> (batch, output_size); images are flattened
        x = self.act(self.fc1(x.flatten(1)))
        for layer in self.hidden_layers:
            x = self.act(layer(x))
        return self.fc2(x)


class TorchCNN(nn.Module):
    """Lab D's CNN (:class:`jaxlabs.models.CNN`): [conv (pad k//2) -> (BatchNorm) -> relu ->
    maxpool 2] x depth, channels doubling per block -> flatten (NCHW) -> fc1 -> relu -> dropout ->
    fc2. The defaults are the report's base: two 5x5 blocks of 32 and 64 channels, fc 128, dropout 0.5."""

    def __init__(self, in_channels=1, in_size=28, depth=2, kernel=5, channels=32, hidden=128, classes=10,
                 batch_norm=False, dropout=0.5):
        super().__init__()
        widths = [channels * 2**i for i in range(depth)]
        self.convs = nn.ModuleList([nn.Conv2d(c, w, kernel, padding=kernel // 2)
                                    for c, w in zip([in_channels] + widths[:-1], widths)])
        self.bns = nn.ModuleList([nn.BatchNorm2d(w) for w in widths]) if batch_norm else None
        side = in_size // 2**depth
        self.fc1 = nn.Linear(widths[-1] * side * side, hidden)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, classes)

    def forward(self, x):  # (batch, in_channels, in_size, in_size) -> (batch, classes)
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if self.bns is not None:
                x = self.bns[i](x)
            x = F.max_pool2d(F.relu(x), 2)
        return self.fc2(self.dropout(F.relu(self.fc1(x.flatten(1)))))


class ShortcutA(nn.Module):
    """The option-A shortcut: no parameters; every second pixel, the new channels zero-padded
    evenly on both sides (``planes // 4`` each when the channels double, as akamaster's lambda)."""

    def __init__(self, extra: int):
        super().__init__()
        self.extra = extra

    def forward(self, x):  # (batch, c, h, w) -> (batch, c + extra, h / 2, w / 2)
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))


class BasicBlock(nn.Module):
    """akamaster's block: 3x3 conv (stride) -> BN -> relu -> 3x3 conv -> BN, plus the shortcut, relu."""

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = ShortcutA(planes - in_planes) if stride != 1 or in_planes != planes else nn.Sequential()

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """akamaster's CIFAR ResNet (:class:`jaxlabs.models.ResNet`): a 3x3 conv of ``width`` channels,
    three stages of ``blocks`` basic blocks at ``width``, 2 and 4 ``width`` channels (stride 2 into
    the second and third), global average pool, Linear. ``BatchNorm2d`` defaults are jaxlabs'
    BatchNorm (momentum 0.1, eps 1e-5). The defaults are ResNet20: 269,722 parameters."""

    def __init__(self, blocks=3, width=16, num_classes=10):
        super().__init__()
        self.in_planes = width
        self.conv1 = nn.Conv2d(3, width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.layer1 = self._make_layer(width, blocks, 1)
        self.layer2 = self._make_layer(2 * width, blocks, 2)
        self.layer3 = self._make_layer(4 * width, blocks, 2)
        self.linear = nn.Linear(4 * width, num_classes)

    def _make_layer(self, planes, n, stride):
        layers = []
        for s in [stride] + [1] * (n - 1):
            layers.append(BasicBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x):  # (batch, 3, 32, 32) -> (batch, num_classes)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, out.size()[3])
        return self.linear(out.flatten(1))
