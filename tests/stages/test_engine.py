"""The training engine: loaders, the global batch, resuming from last.ckpt and force."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import torch

from spol.config import Recipe
from spol.data import Dataset
from spol.data.loaders import ImageLabelDataset
from spol.models import load_exported_model
from spol.runtime.engine import make_train_loader, per_device_batch_size, stage_epochs
from spol.stages import train_cam


def test_train_loader_drops_the_last_partial_batch_and_shrinks_to_small_sets(
    tiny_recipe: Recipe, tiny_dataset: Dataset
) -> None:
    images = ImageLabelDataset(tiny_dataset.records[:7], lambda image: torch.zeros(1))
    assert len(make_train_loader(images, batch_size=3, recipe=tiny_recipe)) == 2
    assert len(make_train_loader(images, batch_size=32, recipe=tiny_recipe)) == 1
    with pytest.raises(ValueError, match="empty"):
        make_train_loader(ImageLabelDataset([], lambda image: image), batch_size=3, recipe=tiny_recipe)


def test_the_recipe_batch_is_global_and_split_over_devices_and_accumulation() -> None:
    assert per_device_batch_size(64, world_size=1, accumulate=1) == 64
    assert per_device_batch_size(64, world_size=8, accumulate=1) == 8
    assert per_device_batch_size(128, world_size=4, accumulate=2) == 16
    with pytest.raises(ValueError, match=r"cam.batch_size=64 .* 3 device\(s\).*multiple of 3 \(e.g. 63 or 66\)"):
        per_device_batch_size(64, world_size=3, accumulate=1, key="cam.batch_size")


def test_each_device_shrinks_its_batch_to_its_share_of_a_small_set(tiny_recipe: Recipe, tiny_dataset: Dataset) -> None:
    images = ImageLabelDataset(tiny_dataset.records[:7], lambda image: torch.zeros(1))
    assert make_train_loader(images, batch_size=4, recipe=tiny_recipe, world_size=2).batch_size == 3
    with pytest.raises(ValueError, match="at least 2 per device"):
        make_train_loader(images, batch_size=4, recipe=tiny_recipe, world_size=4)


def _epoch_rows(run: Path) -> list[list[str]]:
    return [line.split(",") for line in (run / "metrics.csv").read_text().splitlines() if line.startswith("epoch")]


@pytest.mark.slow
def test_resume_continues_from_last_checkpoint_and_force_starts_over(
    tiny_recipe: Recipe, tiny_dataset: Dataset, tmp_path: Path
) -> None:
    run = tmp_path / "cam"
    two_epochs = tiny_recipe.model_copy(update={"cam": tiny_recipe.cam.model_copy(update={"epochs": 2})})
    straight = load_exported_model(train_cam(two_epochs, tiny_dataset, tmp_path / "straight"))

    # One epoch, then "crash" before the export: model.pt gone, checkpoints kept.
    train_cam(tiny_recipe, tiny_dataset, run)
    (run / "model.pt").unlink()
    train_cam(two_epochs, tiny_dataset, run)
    assert [row[1:3] for row in _epoch_rows(run)] == [["0", "2"], ["1", "4"]]
    assert "resuming from" in (run / "train.log").read_text()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch-000.ckpt", "epoch-001.ckpt", "last.ckpt"]
    # Seeded training resumed after epoch 1 ends where uninterrupted training ends.
    resumed = load_exported_model(run / "model.pt")
    for name, value in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], value, msg=name)

    # force: the old checkpoints and metrics go, training starts at epoch 0 again.
    train_cam(tiny_recipe, tiny_dataset, run, force=True)
    assert [row[1:3] for row in _epoch_rows(run)] == [["0", "2"]]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch-000.ckpt", "last.ckpt"]


def test_min_steps_raises_the_epochs_of_a_small_train_split(
    tiny_recipe: Recipe, tiny_dataset: Dataset, tmp_path: Path
) -> None:
    assert stage_epochs(tiny_recipe.cam.model_copy(update={"epochs": 2, "min_steps": 7}), steps_per_epoch=2) == 4
    assert stage_epochs(tiny_recipe.cam.model_copy(update={"epochs": 5, "min_steps": 7}), steps_per_epoch=2) == 5
    assert stage_epochs(tiny_recipe.cam.model_copy(update={"epochs": 2}), steps_per_epoch=2) == 2
    # Two steps an epoch on this split: one epoch asked, five steps at least, so three epochs run.
    recipe = tiny_recipe.model_copy(update={"cam": tiny_recipe.cam.model_copy(update={"epochs": 1, "min_steps": 5})})
    run = tmp_path / "cam"
    train_cam(recipe, tiny_dataset, run)
    assert [row[1:3] for row in _epoch_rows(run)] == [["0", "2"], ["1", "4"], ["2", "6"]]


def test_the_train_loader_leaves_the_global_random_generator_alone(tiny_recipe: Recipe, tiny_dataset: Dataset) -> None:
    # Dropout draws from the global generator: a loader that drew from it too, once per epoch without worker
    # processes and once per run with persistent ones, gave other dropout masks for another data.num_workers.
    images = ImageLabelDataset(tiny_dataset.records, lambda image: torch.zeros(1))
    loader = make_train_loader(images, batch_size=4, recipe=tiny_recipe)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    for _ in range(2):
        list(loader)
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.slow
def test_min_steps_gives_the_same_network_with_any_number_of_loader_processes(
    tiny_recipe: Recipe, tiny_dataset: Dataset, tmp_path: Path
) -> None:
    # One epoch asked, min_steps makes it three: the epochs after the first are where worker counts differed.
    cam = tiny_recipe.cam.model_copy(update={"epochs": 1, "min_steps": 5})
    states = []
    for workers in (0, 2):
        recipe = tiny_recipe.model_copy(
            update={"cam": cam, "data": tiny_recipe.data.model_copy(update={"num_workers": workers})}
        )
        states.append(load_exported_model(train_cam(recipe, tiny_dataset, tmp_path / f"w{workers}")).state_dict())
    assert "3 epochs (raised from 1" in (tmp_path / "w2" / "train.log").read_text()
    for name, value in states[0].items():
        assert torch.equal(states[1][name], value), name


def test_checkpoints_are_written_beside_their_final_name_not_in_the_system_temporary_folder(
    tiny_recipe: Recipe, tiny_dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Lightning wrote each checkpoint in the system's temporary folder, then moved it: a copy, not a rename,
    # when that folder is another file system (a tmpfs /tmp), so a kill or a full disk left a truncated
    # last.ckpt under its final name. A missing temporary folder shows where the bytes go.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-folder"))
    run = tmp_path / "cam"
    train_cam(tiny_recipe, tiny_dataset, run)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch-000.ckpt", "last.ckpt"]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2


@pytest.mark.parametrize(
    ("keep", "expected"),
    [
        (1, ["epoch-002.ckpt", "last.ckpt"]),
        (0, ["last.ckpt"]),
        (None, ["epoch-000.ckpt", "epoch-001.ckpt", "epoch-002.ckpt", "last.ckpt"]),
    ],
)
def test_keep_checkpoints_bounds_the_epoch_checkpoints_on_disk(
    tiny_recipe: Recipe, tiny_dataset: Dataset, tmp_path: Path, keep: int | None, expected: list[str]
) -> None:
    recipe = tiny_recipe.model_copy(
        update={
            "cam": tiny_recipe.cam.model_copy(update={"epochs": 3}),
            "trainer": tiny_recipe.trainer.model_copy(update={"keep_checkpoints": keep}),
        }
    )
    run = tmp_path / "cam"
    train_cam(recipe, tiny_dataset, run)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == expected
    # What is kept is the end of training: the newest epoch checkpoint holds the exported weights.
    if keep:
        state = torch.load(run / "checkpoints" / expected[0], weights_only=True)["state_dict"]
        exported = load_exported_model(run / "model.pt").state_dict()
        for name, value in exported.items():
            torch.testing.assert_close(state[f"net.{name}"], value, msg=name)


def test_steps_per_epoch_counts_each_process_share_of_the_images() -> None:
    from spol.runtime.engine import steps_per_epoch

    assert steps_per_epoch(12, 4, 1, 1) == 3
    assert steps_per_epoch(12, 2, 2, 1) == 3  # 6 images a process, batches of 2
    assert steps_per_epoch(13, 2, 2, 1) == 3  # 7 (padded) a process, the incomplete batch dropped
    assert steps_per_epoch(10, 3, 3, 1) == 1
    assert steps_per_epoch(64, 4, 2, 2) == 4  # 8 batches a process, 2 accumulated per step
