"""Training the CAM network (MFF-Net #1) on image-level labels, or the vanilla CAM baseline.

Loss: `spol.models.cam_distillation_loss` — with the deep branch (CUB recipe)
``(CE(p_1, y) + H(softmax(p_1).detach(), log_softmax(p_2))) / 2``, else ``CE(p_2, y)`` (ImageNet
recipe, and the vanilla CAM baseline). Augmentation: resize ``data.resize``, random crop
``data.crop``, horizontal flip, the backbone's normalisation.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, cast

from torch import Tensor, nn

from spol.config import Recipe, StageOptimConfig
from spol.data import Dataset
from spol.data.loaders import ImageLabelDataset
from spol.data.transforms import normalization_of, train_transform
from spol.models import MODEL_BUILDERS, cam_distillation_loss, export_model
from spol.runtime.engine import fit_stage, seed_everything
from spol.runtime.stage_folder import finished_model, stage_inputs
from spol.runtime.system import TrainingSystem
from spol.stages.parameters import backbone_predicate, freeze_backbone, require_two_classes, train_records

logger = logging.getLogger(__name__)


class CamSystem(TrainingSystem):
    """Lightning system of a CAM network (`MFFNet` with a CAM head or `VanillaCAM`).

    Batches: images B x 3 x H x W (normalised), labels B int64. Logs loss and top-1 accuracy of
    the fused logits.
    """

    def __init__(self, net: nn.Module, optim: StageOptimConfig) -> None:
        super().__init__(net, optim, backbone_predicate())

    def compute_loss(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        images, labels = batch
        output = self.net(images)
        loss = cam_distillation_loss(output, labels)
        accuracy = (output.logits.argmax(dim=1) == labels).float().mean()
        return loss, accuracy


def cam_model_kwargs(recipe: Recipe, num_classes: int, *, baseline: bool) -> tuple[str, dict[str, Any]]:
    """The builder name and keyword arguments (without weights) of the CAM network a recipe trains."""
    if baseline:
        return "vanilla_cam", {"backbone": recipe.backbone, "num_classes": num_classes}
    return "mffnet_cam", {"backbone": recipe.backbone, "num_classes": num_classes, "aux_branch": recipe.cam.aux_branch}


def cam_stage_inputs(recipe: Recipe, dataset: Dataset, *, baseline: bool = False) -> dict[str, Any]:
    """What `train_cam` records in ``inputs.json`` (`spol.runtime.stage_folder.stage_inputs`)."""
    return stage_inputs(recipe, ("baseline" if baseline else "cam",), train_records(dataset), root=dataset.root)


def train_cam(recipe: Recipe, dataset: Dataset, run_dir: Path, *, baseline: bool = False, force: bool = False) -> Path:
    """Train the CAM network on the dataset's "train" split; returns ``run_dir/model.pt``.

    Args:
        recipe: the effective recipe (``backbone``, ``weights``, ``data``, ``cam`` or ``baseline``, ``trainer``).
        dataset: images with class labels; only the "train" split is used.
        run_dir: the stage's run folder (see `spol.runtime.engine`).
        baseline: train the vanilla CAM network (`spol.models.build_vanilla_cam`) with plain
            cross-entropy instead of MFF-Net, at the recipe's ``baseline`` settings.
        force: start over even if the stage finished or has checkpoints.

    Raises:
        ValueError: empty train split, train images of fewer than 2 classes, labels out of range, or recipe
            values the model rejects.
        FileNotFoundError: the backbone weights file does not exist.
    """
    run_dir = Path(run_dir)
    records = train_records(dataset)
    require_two_classes(dataset)
    name = "baseline" if baseline else "cam"
    done = finished_model(run_dir, force=force, inputs=cam_stage_inputs(recipe, dataset, baseline=baseline))
    if done is not None:
        return done
    seed_everything(recipe.seed)
    section = recipe.baseline if baseline else recipe.cam
    builder, kwargs = cam_model_kwargs(recipe, dataset.num_classes, baseline=baseline)
    net = MODEL_BUILDERS[builder](**kwargs, weights=recipe.weights)
    if section.freeze_stem:
        freeze_backbone(cast(nn.Module, net.backbone), section.freeze_blocks)
    transform = train_transform(resize=recipe.data.resize, crop=recipe.data.crop, normalization=normalization_of(net))
    images = ImageLabelDataset(records, transform, min_size=recipe.data.resize)
    logger.info("training %s on %d images, %d classes", builder, len(records), dataset.num_classes)

    def export(model: nn.Module, path: Path) -> None:
        export_model(model, builder=builder, kwargs=kwargs, path=path)

    return fit_stage(
        CamSystem(net, section),
        images,
        recipe=recipe,
        stage=section,
        section_name=name,
        run_dir=run_dir,
        export=export,
        force=force,
    )


__all__ = ["CamSystem", "cam_model_kwargs", "cam_stage_inputs", "train_cam"]
