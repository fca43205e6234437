"""`from_release` against the authors' model definition (github.com/weijun-arc/SPOL).

`ReleaseResNet`, `ReleaseBottleneck` (network/resnet.py), `ReleaseModel` (cub200-cls/model.py, the
CUB CAM network; imagenet-cam/model.py has the same eval forward; cub200-seg/model.py for
``clsnum=1`` with no ReLU) and `release_weight_init` (utils/tools.py) are re-typed from the release
at commit 828052f, with ``args`` replaced by arguments and the ImageNet-file loading left out.
"""

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spol.models import MFFNet, ReleaseNetwork, build_mffnet_cam, from_release
from spol.models.release import convert_release_state_dict

X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
NUM_CLASSES = 7


class ReleaseBottleneck(nn.Module):
    def __init__(self, inplanes, planes, stride=1, downsample=None, dilation=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(
            planes, planes, kernel_size=3, stride=stride, padding=(3 * dilation - 1) // 2, bias=False, dilation=dilation
        )
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = downsample

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = F.relu(self.bn2(self.conv2(out)), inplace=True)
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            x = self.downsample(x)
        return F.relu(out + x, inplace=True)


class ReleaseResNet(nn.Module):
    def __init__(self, layer=(3, 4, 6, 3)):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = self.make_layer(64, layer[0], stride=1, dilation=1)
        self.layer2 = self.make_layer(128, layer[1], stride=2, dilation=1)
        self.layer3 = self.make_layer(256, layer[2], stride=2, dilation=1)
        self.layer4 = self.make_layer(512, layer[3], stride=2, dilation=1)

    def make_layer(self, planes, blocks, stride, dilation):
        downsample = nn.Sequential(
            nn.Conv2d(self.inplanes, planes * 4, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(planes * 4)
        )
        layers = [ReleaseBottleneck(self.inplanes, planes, stride, downsample, dilation=dilation)]
        self.inplanes = planes * 4
        for _ in range(1, blocks):
            layers.append(ReleaseBottleneck(self.inplanes, planes, dilation=dilation))
        return nn.Sequential(*layers)

    def forward(self, x):
        out1 = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out1 = F.max_pool2d(out1, kernel_size=3, stride=2, padding=1)
        out2 = self.layer1(out1)
        out3 = self.layer2(out2)
        out4 = self.layer3(out3)
        out5 = self.layer4(out4)
        return out2, out3, out4, out5

    def initialize(self):
        pass  # the release loads ../resource/resnet50-19c8e357.pth here


def release_weight_init(module):
    for _, m in module.named_children():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)):
            if m.weight is not None:
                nn.init.ones_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Sequential):
            release_weight_init(m)
        elif isinstance(m, nn.ReLU):
            pass
        else:
            m.initialize()


class ReleaseModel(nn.Module):
    """``clsnum > 1``: cub200-cls/model.py (CAM, two branches in training); ``clsnum == 1``: cub200-seg/model.py."""

    def __init__(self, clsnum, mode="test"):
        super().__init__()
        self.clsnum, self.mode = clsnum, mode
        self.bkbone = ReleaseResNet()
        self.fc51 = nn.Conv2d(2048, 128, kernel_size=1, stride=1, padding=0)
        self.bn51 = nn.BatchNorm2d(128)
        self.fc52 = nn.Conv2d(128, 2048, kernel_size=1, stride=1, padding=0)
        self.fc41 = nn.Conv2d(1024, 128, kernel_size=1, stride=1, padding=0)
        self.bn41 = nn.BatchNorm2d(128)
        self.fc42 = nn.Conv2d(128, 1024, kernel_size=1, stride=1, padding=0)
        self.fc31 = nn.Conv2d(512, 128, kernel_size=1, stride=1, padding=0)
        self.bn31 = nn.BatchNorm2d(128)
        self.fc32 = nn.Conv2d(128, 512, kernel_size=1, stride=1, padding=0)

        self.linear5 = nn.Conv2d(2048, 128, kernel_size=1, stride=1, padding=0)
        self.bn5 = nn.BatchNorm2d(128)
        self.linear4 = nn.Conv2d(1024, 128, kernel_size=1, stride=1, padding=0)
        self.bn4 = nn.BatchNorm2d(128)
        self.linear3 = nn.Conv2d(512, 128, kernel_size=1, stride=1, padding=0)
        self.bn3 = nn.BatchNorm2d(128)
        self.linear = nn.Conv2d(128, clsnum, kernel_size=1, stride=1, padding=0)
        release_weight_init(self)

    def forward(self, x):
        out2, out3, out4, out5 = self.bkbone(x)

        out5a = F.relu(self.bn51(self.fc51(out5.mean(dim=(2, 3), keepdim=True))), inplace=True)
        out4a = F.relu(self.bn41(self.fc41(out4.mean(dim=(2, 3), keepdim=True))), inplace=True)
        out3a = F.relu(self.bn31(self.fc31(out3.mean(dim=(2, 3), keepdim=True))), inplace=True)
        vector = out5a * out4a * out3a
        out5 = torch.sigmoid(self.fc52(vector)) * out5
        out4 = torch.sigmoid(self.fc42(vector)) * out4
        out3 = torch.sigmoid(self.fc32(vector)) * out3

        out5 = F.relu(self.bn5(self.linear5(out5)), inplace=True)
        out5 = F.interpolate(out5, size=out3.size()[2:], mode="bilinear", align_corners=True)
        out4 = F.relu(self.bn4(self.linear4(out4)), inplace=True)
        out4 = F.interpolate(out4, size=out3.size()[2:], mode="bilinear", align_corners=True)
        out3 = F.relu(self.bn3(self.linear3(out3)), inplace=True)

        if self.clsnum == 1:  # cub200-seg/model.py
            out = out5 * out4 * out3
            if self.mode == "train":
                out = F.dropout(out, p=0.5)
            return self.linear(out)
        if self.mode == "train":
            pred1 = F.dropout(out5, p=0.5)
            pred1 = F.relu(self.linear(pred1), inplace=True)

            pred2 = F.dropout(out5 * out4 * out3, p=0.5)
            pred2 = F.relu(self.linear(pred2), inplace=True)
            return pred1, pred2
        pred = out5 * out4 * out3
        pred = F.relu(self.linear(pred), inplace=True)
        return pred


def _random_release(clsnum: int, seed: int) -> ReleaseModel:
    # Random weights everywhere, BatchNorm statistics and affines included, so that every
    # renamed tensor changes the output.
    torch.manual_seed(seed)
    model = ReleaseModel(clsnum)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
            elif isinstance(module, nn.Conv2d) and module.bias is not None:
                module.bias.normal_(0, 0.1)
    return model.eval()


def _assert_same(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    # The criterion (max abs diff < 1e-4) and a relative one: with random weights the maps
    # are ~0.1, and swapping two same-shape BatchNorms of the attention changes them by only ~3e-5.
    assert (ours - theirs).abs().max().item() < 1e-4
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6)


@pytest.fixture(scope="module")
def release_cam() -> ReleaseModel:
    return _random_release(NUM_CLASSES, seed=3)


@pytest.fixture(scope="module")
def release_seg() -> ReleaseModel:
    model = _random_release(1, seed=4)
    with torch.no_grad():  # centre the logits on 0 so that they take both signs
        model.linear.bias -= model(X).median()
    return model


def test_cam_network_returns_the_release_class_maps(release_cam: ReleaseModel) -> None:
    model = from_release(release_cam.state_dict(), "cam", NUM_CLASSES)
    assert isinstance(model, ReleaseNetwork) and not model.training
    with torch.no_grad():
        ours, theirs = model(X), release_cam(X)
    assert isinstance(ours, torch.Tensor) and ours.shape == theirs.shape == (2, NUM_CLASSES, 8, 8)
    assert (theirs > 0).any()
    _assert_same(ours, theirs)


def test_seg_network_returns_the_release_logits(release_seg: ReleaseModel) -> None:
    model = from_release(release_seg.state_dict(), "seg", 1)
    with torch.no_grad():
        ours, theirs = model(X), release_seg(X)
    assert ours.shape == theirs.shape == (2, 1, 8, 8)
    assert (theirs < 0).any() and (theirs > 0).any()  # raw logits, no ReLU
    _assert_same(ours, theirs)


def test_release_file_in_float16_with_dataparallel_prefix_loads(tmp_path: Path, release_seg: ReleaseModel) -> None:
    # apex O2 stores float16 weights; nn.DataParallel prefixes "module.".
    state_dict = {f"module.{k}": v.half() if v.is_floating_point() else v for k, v in release_seg.state_dict().items()}
    path = tmp_path / "model-2"
    torch.save(state_dict, path)
    model = from_release(path, "seg")
    rounded = copy.deepcopy(release_seg)
    rounded.load_state_dict({k.removeprefix("module."): v.float() for k, v in state_dict.items()})
    with torch.no_grad():
        _assert_same(model(X), rounded(X))


def test_training_forward_matches_the_release_two_branch_forward(release_cam: ReleaseModel) -> None:
    ours = build_mffnet_cam(backbone="resnet50", num_classes=NUM_CLASSES, weights=None, aux_branch=True)
    ours.load_state_dict(convert_release_state_dict(release_cam.state_dict()))
    theirs = copy.deepcopy(release_cam)
    ours.train()
    theirs.train()
    theirs.mode = "train"
    torch.manual_seed(5)
    output = ours(X)
    torch.manual_seed(5)
    pred1, pred2 = theirs(X)
    torch.testing.assert_close(output.maps, pred2, rtol=0, atol=1e-4)
    torch.testing.assert_close(output.aux_logits, pred1.mean(dim=(2, 3)), rtol=0, atol=1e-5)
    torch.testing.assert_close(output.logits, pred2.mean(dim=(2, 3)), rtol=0, atol=1e-5)


def test_network_attribute_is_the_mffnet(release_cam: ReleaseModel) -> None:
    model = from_release(release_cam.state_dict(), "cam")  # K read from the file
    assert isinstance(model.network, MFFNet) and model.normalization == "imagenet"
    with torch.no_grad():
        output = model.network(X)
    torch.testing.assert_close(output.logits, output.maps.mean(dim=(2, 3)))
    assert output.maps.shape[1] == NUM_CLASSES


def test_wrong_class_count_and_foreign_keys_are_refused(release_cam: ReleaseModel, tmp_path: Path) -> None:
    state_dict = release_cam.state_dict()
    with pytest.raises(ValueError, match=f"has {NUM_CLASSES} classes, not num_classes=200"):
        from_release(state_dict, "cam", 200)
    with pytest.raises(ValueError, match="task='cam'"):
        from_release(state_dict, "seg")
    with pytest.raises(ValueError, match="task must be"):
        from_release(state_dict, "box", NUM_CLASSES)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"not part of the SPOL release model: extra\.weight"):
        from_release({**state_dict, "extra.weight": torch.zeros(1)}, "cam")
    incomplete = {k: v for k, v in state_dict.items() if not k.startswith("fc42.")}
    with pytest.raises(ValueError, match=r"missing keys: attention\.excite\.1\.weight"):
        from_release(incomplete, "cam")
    with pytest.raises(FileNotFoundError, match="model-9"):
        from_release(tmp_path / "model-9", "cam")
