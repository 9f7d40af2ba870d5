"""Common CIFAR-10 architectures (3x32x32 input, 10 classes), written once in PyTorch style.

benchmarks/bench_zoo.py runs this file as it stands under PyTorch and, after the rewrite of its three import
lines (torch -> minires), under minires; tests/nn/test_zoo_models.py runs the rewritten copy. The shapes follow
the papers, adapted to 32x32 inputs as CIFAR repositories do (a 3x3 stride-1 stem, no max pool after it):
VGG-11 with batch norm, ResNet-18, PreAct ResNet-18, DenseNet-121 and DenseNet-BC-100 (k=12), MobileNetV2,
ShuffleNetV2 1x, EfficientNet-B0 (squeeze-excite, SiLU, no drop-connect), RegNetX-200MF, ResNeXt-29 (32x4d and
2x64d) and a DLA (the simple aggregation tree of BasicBlocks). `MODELS` maps each name to its constructor.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_bn(cin, cout, k=3, stride=1, groups=1, act=nn.ReLU):
    """Conv (no bias) -> BatchNorm -> act (none when act is None); padding keeps the size at stride 1."""
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, act()) if act is not None else nn.Sequential(*layers)


def head(cin, num_classes, dropout=0.0):
    """Global average pool -> flatten -> (dropout) -> linear."""
    drop = [nn.Dropout(dropout)] if dropout else []
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), *drop, nn.Linear(cin, num_classes))


# ---- VGG ----------------------------------------------------------------------------------------------------

class VGG(nn.Module):
    """VGG with batch norm; cfg lists conv widths and "M" for a 2x2 max pool (five pools: 32x32 -> 1x1)."""

    def __init__(self, cfg=(64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"), num_classes=10):
        super().__init__()
        layers, c = [], 3
        for v in cfg:
            layers.append(nn.MaxPool2d(2) if v == "M" else conv_bn(c, v))
            c = c if v == "M" else v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))  # (N, 512, 1, 1) -> (N, 512)


# ---- ResNet-18, PreAct ResNet-18 ------------------------------------------------------------------------------

class BasicBlock(nn.Module):
    """Two 3x3 convs with batch norm; a 1x1 conv + BN shortcut where the shape changes."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = conv_bn(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class PreActBlock(nn.Module):
    """BN -> ReLU -> conv, twice; the shortcut (a bare 1x1 conv where the shape changes) leaves after the first ReLU."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.project = stride != 1 or cin != cout
        if self.project:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        out = F.relu(self.bn1(x))
        short = self.shortcut(out) if self.project else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + short


class ResNet(nn.Module):
    """Four stages of 64, 128, 256, 512 channels (32, 16, 8, 4 pixels); preact adds the closing BN -> ReLU."""

    def __init__(self, block=BasicBlock, blocks=(2, 2, 2, 2), num_classes=10):
        super().__init__()
        preact = block is PreActBlock
        self.stem = nn.Conv2d(3, 64, 3, 1, 1, bias=False) if preact else conv_bn(3, 64)
        layers, c = [], 64
        for i, (width, n) in enumerate(zip((64, 128, 256, 512), blocks)):
            for j in range(n):
                layers.append(block(c, width, 2 if i > 0 and j == 0 else 1))
                c = width
        self.layers = nn.Sequential(*layers)
        self.tail = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU()) if preact else nn.Identity()
        self.head = head(c, num_classes)

    def forward(self, x):
        return self.head(self.tail(self.layers(self.stem(x))))


# ---- DenseNet ---------------------------------------------------------------------------------------------------

class DenseLayer(nn.Module):
    """Bottleneck BN-ReLU-1x1 conv (4k) -> BN-ReLU-3x3 conv (k); its k new channels join its input."""

    def __init__(self, cin, growth):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, 4 * growth, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth)
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, 1, 1, bias=False)

    def forward(self, x):
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return torch.cat([x, out], 1)  # (N, cin + k, H, W)


class DenseNet(nn.Module):
    """Dense blocks joined by transitions (BN-ReLU-1x1 conv to half the channels, 2x2 average pool)."""

    def __init__(self, blocks=(6, 12, 24, 16), growth=32, reduction=0.5, num_classes=10):
        super().__init__()
        c = 2 * growth
        layers = [nn.Conv2d(3, c, 3, 1, 1, bias=False)]
        for i, n in enumerate(blocks):
            for _ in range(n):
                layers.append(DenseLayer(c, growth))
                c += growth
            if i < len(blocks) - 1:
                out = int(c * reduction)
                layers.append(nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, out, 1, bias=False),
                                            nn.AvgPool2d(2)))
                c = out
        self.features = nn.Sequential(*layers, nn.BatchNorm2d(c), nn.ReLU())
        self.head = head(c, num_classes)

    def forward(self, x):
        return self.head(self.features(x))


# ---- MobileNetV2, EfficientNet-B0 -----------------------------------------------------------------------------

class SqueezeExcite(nn.Module):
    """Channel gates: global mean -> 1x1 conv (reduce) -> SiLU -> 1x1 conv (expand) -> sigmoid -> scale."""

    def __init__(self, c, reduced):
        super().__init__()
        self.reduce = nn.Conv2d(c, reduced, 1)
        self.expand = nn.Conv2d(reduced, c, 1)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)  # (N, C, 1, 1)
        return x * torch.sigmoid(self.expand(F.silu(self.reduce(s))))


class InvertedResidual(nn.Module):
    """1x1 expand (skipped at t=1) -> depthwise kxk -> (squeeze-excite) -> 1x1 project; identity shortcut where
    the shape allows."""

    def __init__(self, cin, cout, expand, stride, k=3, act=nn.ReLU6, se=0.0):
        super().__init__()
        mid = cin * expand
        layers = [conv_bn(cin, mid, 1, act=act)] if expand != 1 else []
        layers.append(conv_bn(mid, mid, k, stride, groups=mid, act=act))
        if se:
            layers.append(SqueezeExcite(mid, max(1, int(cin * se))))
        layers.append(conv_bn(mid, cout, 1, act=None))
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        out = self.body(x)
        return x + out if self.residual else out


# (expansion t, output channels c, blocks n, first stride s[, kernel k]); CIFAR: MobileNetV2's second stage keeps
# stride 1 (32x32 -> 4x4 overall), EfficientNet-B0 keeps its ImageNet strides after a stride-1 stem (-> 2x2).
MOBILENETV2 = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
               (6, 320, 1, 1))
EFFICIENTNET_B0 = ((1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 40, 2, 2, 5), (6, 80, 3, 2, 3), (6, 112, 3, 1, 5),
                   (6, 192, 4, 2, 5), (6, 320, 1, 1, 3))


class MobileNet(nn.Module):
    """A stem, inverted-residual stages from `cfg`, a 1x1 conv to 1280 channels, the head."""

    def __init__(self, cfg=MOBILENETV2, act=nn.ReLU6, se=0.0, dropout=0.0, num_classes=10):
        super().__init__()
        layers, c = [conv_bn(3, 32, act=act)], 32
        for t, cout, n, s, *k in cfg:
            for j in range(n):
                layers.append(InvertedResidual(c, cout, t, s if j == 0 else 1, k[0] if k else 3, act, se))
                c = cout
        self.features = nn.Sequential(*layers, conv_bn(c, 1280, 1, act=act))
        self.head = head(1280, num_classes, dropout)

    def forward(self, x):
        return self.head(self.features(x))


# ---- ShuffleNetV2 -------------------------------------------------------------------------------------------------

def channel_shuffle(x, groups):
    """Interleave the channels of `groups` groups: (N, g*c, H, W) -> (N, c*g, H, W)."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleUnit(nn.Module):
    """At stride 1 half the channels pass, the other half go 1x1 -> depthwise 3x3 -> 1x1; at stride 2 both halves
    downsample (the left through depthwise 3x3 -> 1x1). The halves concatenate, then shuffle."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        half = cout // 2
        self.stride = stride
        if stride == 2:
            self.left = nn.Sequential(conv_bn(cin, cin, 3, 2, groups=cin, act=None), conv_bn(cin, half, 1))
        branch_in = cin if stride == 2 else half
        self.right = nn.Sequential(conv_bn(branch_in, half, 1), conv_bn(half, half, 3, stride, groups=half, act=None),
                                   conv_bn(half, half, 1))

    def forward(self, x):
        if self.stride == 2:
            out = torch.cat([self.left(x), self.right(x)], 1)
        else:
            a, b = x.chunk(2, dim=1)
            out = torch.cat([a, self.right(b)], 1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    """ShuffleNetV2 1x: 24-channel stem, stages of 116, 232, 464 channels (4, 8, 4 units), 1x1 conv to 1024."""

    def __init__(self, widths=(116, 232, 464), units=(4, 8, 4), num_classes=10):
        super().__init__()
        layers, c = [conv_bn(3, 24)], 24
        for width, n in zip(widths, units):
            for j in range(n):
                layers.append(ShuffleUnit(c, width, 2 if j == 0 else 1))
                c = width
        self.features = nn.Sequential(*layers, conv_bn(c, 1024, 1))
        self.head = head(1024, num_classes)

    def forward(self, x):
        return self.head(self.features(x))


# ---- RegNetX, ResNeXt ---------------------------------------------------------------------------------------------

class XBlock(nn.Module):
    """Bottleneck 1x1 -> grouped 3x3 (groups of `group_width` channels) -> 1x1; conv + BN shortcut where the shape
    changes. RegNetX's block at width_out = mid; ResNeXt's at width_out = 2 * mid."""

    def __init__(self, cin, mid, cout, stride, group_width):
        super().__init__()
        self.body = nn.Sequential(conv_bn(cin, mid, 1), conv_bn(mid, mid, 3, stride, groups=mid // group_width),
                                  conv_bn(mid, cout, 1, act=None))
        self.shortcut = conv_bn(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x):
        return F.relu(self.body(x) + self.shortcut(x))


class RegNetX(nn.Module):
    """RegNetX-200MF: stem 32, stages of depth (1, 1, 4, 7) and width (24, 56, 152, 368), group width 8;
    the first two stages keep stride 1 on CIFAR (32x32 -> 8x8)."""

    def __init__(self, depths=(1, 1, 4, 7), widths=(24, 56, 152, 368), strides=(1, 1, 2, 2), group_width=8,
                 num_classes=10):
        super().__init__()
        layers, c = [conv_bn(3, 32)], 32
        for depth, width, stride in zip(depths, widths, strides):
            for j in range(depth):
                layers.append(XBlock(c, width, width, stride if j == 0 else 1, group_width))
                c = width
        self.features = nn.Sequential(*layers)
        self.head = head(c, num_classes)

    def forward(self, x):
        return self.head(self.features(x))


class ResNeXt29(nn.Module):
    """ResNeXt-29 (cardinality x d): 3x3 stem to 64, three stages of 3 blocks whose group width cardinality*d
    doubles each stage (outputs 2x that), strides 1, 2, 2."""

    def __init__(self, cardinality=32, d=4, num_classes=10):
        super().__init__()
        layers, c, mid = [conv_bn(3, 64)], 64, cardinality * d
        for stage in range(3):
            for j in range(3):
                layers.append(XBlock(c, mid, 2 * mid, 2 if stage > 0 and j == 0 else 1, mid // cardinality))
                c = 2 * mid
            mid *= 2
        self.features = nn.Sequential(*layers)
        self.head = head(c, num_classes)

    def forward(self, x):
        return self.head(self.features(x))


# ---- DLA ----------------------------------------------------------------------------------------------------------

class Tree(nn.Module):
    """An aggregation tree: two subtrees (BasicBlocks at level 1) in sequence, their outputs concatenated and
    merged by a root 1x1 conv -> BN -> ReLU."""

    def __init__(self, cin, cout, level=1, stride=1):
        super().__init__()
        if level == 1:
            self.left, self.right = BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)
        else:
            self.left, self.right = Tree(cin, cout, level - 1, stride), Tree(cout, cout, level - 1, 1)
        self.root = conv_bn(2 * cout, cout, 1)

    def forward(self, x):
        a = self.left(x)
        b = self.right(a)
        return self.root(torch.cat([a, b], 1))


class DLA(nn.Module):
    """A simple DLA: three 3x3 conv layers (16, 16, 32), then trees of 64, 128, 256, 512 channels (levels 1, 2, 2, 1;
    strides 1, 2, 2, 2)."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.base = nn.Sequential(conv_bn(3, 16), conv_bn(16, 16), conv_bn(16, 32))
        self.trees = nn.Sequential(Tree(32, 64, 1, 1), Tree(64, 128, 2, 2), Tree(128, 256, 2, 2), Tree(256, 512, 1, 2))
        self.head = head(512, num_classes)

    def forward(self, x):
        return self.head(self.trees(self.base(x)))


MODELS = {
    "vgg11": lambda: VGG(),
    "resnet18": lambda: ResNet(BasicBlock),
    "preact_resnet18": lambda: ResNet(PreActBlock),
    "densenet121": lambda: DenseNet((6, 12, 24, 16), growth=32),
    "densenet_bc100": lambda: DenseNet((16, 16, 16), growth=12),
    "mobilenetv2": lambda: MobileNet(MOBILENETV2),
    "shufflenetv2": lambda: ShuffleNetV2(),
    "efficientnet_b0": lambda: MobileNet(EFFICIENTNET_B0, act=nn.SiLU, se=0.25, dropout=0.2),
    "regnetx_200mf": lambda: RegNetX(),
    "resnext29_32x4d": lambda: ResNeXt29(32, 4),
    "resnext29_2x64d": lambda: ResNeXt29(2, 64),
    "dla": lambda: DLA(),
}
