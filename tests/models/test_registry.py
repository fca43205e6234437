from pathlib import Path

import pytest
import torch

from spol.models import MODEL_BUILDERS, MFFNet, build_mffnet_seg, export_model, load_exported_model, state_digest

X = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def test_exported_model_is_a_plain_dict_that_rebuilds_the_same_network(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_mffnet_seg(weights=None).eval()
    with torch.no_grad():
        for p in model.parameters():  # weights that a fresh build could not have by chance
            p.add_(0.01)
    path = tmp_path / "seg.pt"
    export_model(
        model, builder="mffnet_seg", kwargs={"backbone": "efficientnet_lite0", "weights": "default"}, path=path
    )
    payload = torch.load(path, weights_only=True)
    assert set(payload) == {"builder", "kwargs", "state_dict"}
    assert payload["builder"] == "mffnet_seg" and payload["kwargs"] == {"backbone": "efficientnet_lite0"}
    rebuilt = load_exported_model(path)
    assert isinstance(rebuilt, MFFNet) and not rebuilt.training and rebuilt.head == "seg"
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(X).maps, model(X).maps, rtol=0, atol=0)
    assert [p.name for p in tmp_path.iterdir()] == ["seg.pt"]  # written atomically, no temporary left


def test_classifier_export_keeps_its_normalization(tmp_path: Path) -> None:
    model = MODEL_BUILDERS["classifier"](backbone="efficientnet_lite0", num_classes=3, weights=None)
    path = tmp_path / "cls.pt"
    export_model(model, builder="classifier", kwargs={"num_classes": 3}, path=path)
    assert load_exported_model(path).normalization == "half"


def test_export_refuses_a_model_that_the_builder_does_not_rebuild(tmp_path: Path) -> None:
    model = MODEL_BUILDERS["vanilla_cam"](num_classes=3, weights=None)
    with pytest.raises(ValueError, match=r"check builder='vanilla_cam'"):
        export_model(model, builder="vanilla_cam", kwargs={"num_classes": 5}, path=tmp_path / "a.pt")
    with pytest.raises(ValueError, match="unknown builder"):
        export_model(model, builder="nope", kwargs={}, path=tmp_path / "b.pt")
    with pytest.raises(ValueError, match="plain data"):
        export_model(model, builder="vanilla_cam", kwargs={"num_classes": 3, "path": tmp_path}, path=tmp_path / "c.pt")
    assert not list(tmp_path.iterdir())


def test_loading_names_a_missing_or_foreign_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="absent.pt"):
        load_exported_model(tmp_path / "absent.pt")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weight": torch.zeros(1)}, foreign)
    with pytest.raises(ValueError, match="foreign.pt is not a spol model file"):
        load_exported_model(foreign)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="corrupt.pt"):
        load_exported_model(corrupt)


def test_state_digest_follows_the_weights_not_the_object(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_mffnet_seg(backbone="efficientnet_lite0", weights=None)
    path = tmp_path / "seg.pt"
    export_model(model, builder="mffnet_seg", kwargs={"backbone": "efficientnet_lite0"}, path=path)
    digest = state_digest(model)
    assert state_digest(load_exported_model(path)) == digest
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] += 1e-3
    assert state_digest(model) != digest
