"""Training (fine-tuning) the image classifier that gives the class for Top-1 / Top-5 Loc.

The paper fine-tunes EfficientNet-B7 on CUB (685 resize, 600 crop, SGD lr 0.05 for the new head,
0.1x for the backbone, 20 epochs, batch 16, linear decay): recipe section ``classifier``.
Loss: cross-entropy. Augmentation: resize, random crop, horizontal flip.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from spol.config import ClassifierConfig, Recipe
from spol.data import Dataset
from spol.data.loaders import ImageLabelDataset
from spol.data.transforms import normalization_of, train_transform
from spol.models import build_classifier, export_model
from spol.models.layers import cross_entropy
from spol.rundir import MODEL_FILE
from spol.runtime.distributed import barrier, ensure_process_group, is_global_zero
from spol.runtime.engine import fit_stage, seed_everything
from spol.runtime.stage_folder import finished_model, stage_inputs
from spol.runtime.system import TrainingSystem
from spol.stages.parameters import not_head_predicate, require_two_classes, train_records

logger = logging.getLogger(__name__)


class ClassifierSystem(TrainingSystem):
    """Lightning system of an image classifier: images B x 3 x H x W, labels B int64, cross-entropy.

    The head (new layer, named by the `section.backbone` entry of `spol.models.BACKBONES`) trains at
    ``lr``, the rest at ``lr * backbone_lr_mult``.
    """

    def __init__(self, net: nn.Module, section: ClassifierConfig) -> None:
        super().__init__(net, section, not_head_predicate(section.backbone))

    def compute_loss(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        images, labels = batch
        logits = self.net(images)
        return cross_entropy(logits, labels), (logits.argmax(dim=1) == labels).float().mean()


def classifier_stage_inputs(recipe: Recipe, dataset: Dataset) -> dict[str, Any]:
    """What `train_classifier` records in ``inputs.json`` (no training image with ``classifier.epochs`` 0)."""
    trained_on = train_records(dataset) if recipe.classifier.epochs else []
    return stage_inputs(recipe, ("classifier",), trained_on, root=dataset.root)


def train_classifier(recipe: Recipe, dataset: Dataset, run_dir: Path, *, force: bool = False) -> Path:
    """Fine-tune the recipe's classifier on the dataset's "train" split; returns ``run_dir/model.pt``.

    Trains even when ``recipe.classifier.enabled`` is false (the caller decides whether to run it).
    With ``classifier.epochs`` 0 nothing is trained: the weights, whose head must already fit the
    dataset's classes (e.g. an ImageNet model on ImageNet), are exported as they are.

    Raises:
        ValueError: empty train split, train images of fewer than 2 classes, labels out of range, a backbone /
            weights the builder
            rejects, or (epochs 0) weights without a head for the dataset's classes.
        FileNotFoundError: the classifier weights file does not exist.
    """
    run_dir = Path(run_dir)
    section = recipe.classifier
    ensure_process_group(recipe.trainer.accelerator)  # torchrun: the barrier below must wait for rank 0's file
    if section.epochs:
        require_two_classes(dataset)
    done = finished_model(run_dir, force=force, inputs=classifier_stage_inputs(recipe, dataset))
    if done is not None:
        return done
    kwargs: dict[str, Any] = {"backbone": section.backbone, "num_classes": dataset.num_classes}
    if section.epochs == 0:  # the paper's ImageNet classifier: the released weights, head included
        net = build_classifier(
            **kwargs, weights=section.weights, require_head=True, weights_sha256=section.weights_sha256
        )
        if is_global_zero():
            run_dir.mkdir(parents=True, exist_ok=True)
            export_model(net, builder="classifier", kwargs=kwargs, path=run_dir / MODEL_FILE)
            logger.info(
                "classifier %s used as is (classifier.epochs = 0): wrote %s", section.weights, run_dir / MODEL_FILE
            )
        barrier()
        return run_dir / MODEL_FILE
    records = train_records(dataset)
    seed_everything(recipe.seed)
    net = build_classifier(
        **kwargs,
        weights=section.weights,
        dropout=section.dropout,
        drop_connect=section.drop_connect,
        weights_sha256=section.weights_sha256,
    )
    resize = section.resize or recipe.data.resize
    crop = section.crop or recipe.data.crop
    transform = train_transform(resize=resize, crop=crop, normalization=normalization_of(net))
    images = ImageLabelDataset(records, transform, min_size=resize)
    logger.info("training classifier %s on %d images, %d classes", section.backbone, len(records), dataset.num_classes)

    def export(model: nn.Module, path: Path) -> None:
        export_model(model, builder="classifier", kwargs=kwargs, path=path)

    return fit_stage(
        ClassifierSystem(net, section),
        images,
        recipe=recipe,
        stage=section,
        section_name="classifier",
        run_dir=run_dir,
        export=export,
        force=force,
    )


__all__ = ["ClassifierSystem", "classifier_stage_inputs", "train_classifier"]
