"""The HTML report: the run's details, SPOL, MFF-CAM and CAM side by side, what the numbers mean, samples.

One self-contained file: inline CSS, images embedded as base64 PNG, no external assets.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

import numpy as np

from spol.fileio import write_text_atomic
from spol.localization import METHOD_LABELS
from spol.report.metrics import METRIC_DEFINITIONS, METRIC_ROWS, best_other_difference, metric_value
from spol.report.plots import Chart, render_svg
from spol.report.visuals import heatmap_overlay, pseudo_mask_overlay, to_png_base64, with_boxes


@dataclass(frozen=True)
class MethodVisuals:
    """What one method shows for one sample; every part is optional.

    Attributes:
        cam: h x w float class activation map in [0, 1].
        pseudo_mask: h x w uint8 pseudo mask (1 foreground, 0 background, 255 ignored).
        segmentation: h x w float object map in [0, 1].
        box: predicted ``(x0, y0, x1, y1)`` in the sample image's pixels; drawn (green) on the
            segmentation map if there is one, else on the CAM, else on the image.
    """

    cam: np.ndarray | None = None
    pseudo_mask: np.ndarray | None = None
    segmentation: np.ndarray | None = None
    box: Sequence[float] | None = None


@dataclass(frozen=True)
class ReportSample:
    """One test image of the report.

    Attributes:
        image_id: dataset id, shown as the caption.
        image: H x W x 3 uint8 RGB at the evaluation size (e.g. 224 x 224).
        gt_boxes: ground-truth ``(x0, y0, x1, y1)`` boxes in `image`'s pixels (drawn red).
        methods: method name (``"SPOL"``, ``"CAM"``) → its visuals; maps of another size than
            `image` are resized to it.
    """

    image_id: str
    image: np.ndarray
    gt_boxes: Sequence[Sequence[float]] = ()
    methods: Mapping[str, MethodVisuals] = field(default_factory=dict)


def _cell(value: float | None, css: str = "", *, signed: bool = False) -> str:
    text = "—" if value is None else f"{value:+.2f}" if signed else f"{value:.2f}"
    return f'<td class="{css}">{text}</td>' if css else f"<td>{text}</td>"


def metrics_table(metrics: Mapping[str, Mapping[str, Any]]) -> str:
    """The HTML table: one row per metric, one column per method (the best in bold), and SPOL − the best other."""
    methods = list(metrics)
    labels = [METHOD_LABELS.get(m, m) for m in methods]
    header = "".join(f"<th>{html.escape(label)}</th>" for label in labels)
    with_difference = "spol" in methods and len(methods) >= 2
    if with_difference:
        header += "<th>SPOL − best other</th>"
    rows = [f"<tr><th>Metric</th>{header}</tr>"]
    for label, keys in METRIC_ROWS:
        values = {m: metric_value(metrics[m], keys) for m in methods}
        present = [v for v in values.values() if v is not None]
        best = max(present) if present and keys != ("threshold",) else None
        cells = "".join(
            _cell(v, "best" if v is not None and v == best and len(present) > 1 else "") for v in values.values()
        )
        if with_difference:
            difference = best_other_difference(values, keys)
            if difference is None:
                cells += "<td></td>"
            else:
                css = "better" if difference > 0 else "worse" if difference < 0 else ""
                cells += _cell(difference, css, signed=True)
        rows.append(f"<tr><td>{html.escape(label)}</td>{cells}</tr>")
    return '<table class="metrics">\n' + "\n".join(rows) + "\n</table>"


def definitions_table() -> str:
    """What each number means (`spol.report.metrics.METRIC_DEFINITIONS`), as an HTML table."""
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{html.escape(text)}</td></tr>"
        for name, text in METRIC_DEFINITIONS.items()
    )
    return f'<table class="definitions"><tr><th>Metric</th><th>What it measures</th></tr>{rows}</table>'


def details_table(details: Sequence[tuple[str, str]]) -> str:
    """The run's details (data, splits, recipe, seed, version, time per stage) as a two-column HTML table."""
    rows = "".join(f"<tr><th>{html.escape(key)}</th><td>{html.escape(value)}</td></tr>" for key, value in details)
    return f'<table class="details">{rows}</table>'


def _img(image: np.ndarray, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{to_png_base64(image)}">'


def _method_views(sample: ReportSample, name: str) -> dict[str, np.ndarray]:
    visuals = sample.methods.get(name)
    if visuals is None:
        return {}
    gt = list(sample.gt_boxes)
    box_on = "segmentation" if visuals.segmentation is not None else "cam" if visuals.cam is not None else "image"
    views: dict[str, np.ndarray] = {}
    if visuals.cam is not None:
        predicted = visuals.box if box_on == "cam" else None
        views["CAM"] = with_boxes(heatmap_overlay(sample.image, visuals.cam), predicted=predicted, ground_truth=gt)
    if visuals.pseudo_mask is not None:
        views["pseudo mask"] = pseudo_mask_overlay(sample.image, visuals.pseudo_mask)
    if visuals.segmentation is not None:
        views["segmentation"] = with_boxes(
            heatmap_overlay(sample.image, visuals.segmentation), predicted=visuals.box, ground_truth=gt
        )
    if box_on == "image" and visuals.box is not None:
        views["box"] = with_boxes(sample.image, predicted=visuals.box, ground_truth=gt)
    return views


def samples_table(samples: Sequence[ReportSample]) -> str:
    """The HTML table of sample pictures: the image with its ground truth, then each method's views."""
    if not samples:
        return '<p class="muted">No samples.</p>'
    methods = list(dict.fromkeys(name for sample in samples for name in sample.methods))
    per_sample = [{name: _method_views(sample, name) for name in methods} for sample in samples]
    columns = [
        (name, view) for name in methods for view in dict.fromkeys(v for views in per_sample for v in views[name])
    ]
    header = (
        "<tr><th>image + ground truth</th>"
        + "".join(f"<th>{html.escape(name)}: {html.escape(view)}</th>" for name, view in columns)
        + "</tr>"
    )
    rows = [header]
    for sample, views in zip(samples, per_sample, strict=True):
        cells = [
            f"<td>{_img(with_boxes(sample.image, ground_truth=list(sample.gt_boxes)), sample.image_id)}"
            f"{html.escape(sample.image_id)}</td>"
        ]
        for name, view in columns:
            picture = views[name].get(view)
            cells.append(
                f"<td>{_img(picture, f'{sample.image_id} {name} {view}')}</td>"
                if picture is not None
                else '<td class="muted">—</td>'
            )
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return '<table class="samples">\n' + "\n".join(rows) + "\n</table>"


def candidates_table(candidates: Sequence[Mapping[str, Any]]) -> str:
    """The settings tried per method (``--select``): one row each with its val MaxBoxAccV2, the selected ones marked.

    Each candidate is ``{"method", "settings": {key: value}, "val_max_box_acc_v2", "selected"}``.
    """
    rows = ["<tr><th>Method</th><th>Settings</th><th>MaxBoxAccV2 (val)</th><th>Selected</th></tr>"]
    for candidate in candidates:
        settings = ", ".join(f"{key}={value}" for key, value in candidate["settings"].items()) or "the recipe's"
        mark = "✔" if candidate["selected"] else ""
        css = ' class="better"' if candidate["selected"] else ""
        rows.append(
            f"<tr><td>{html.escape(METHOD_LABELS.get(candidate['method'], candidate['method']))}</td>"
            f"<td>{html.escape(settings)}</td>{_cell(candidate['val_max_box_acc_v2'])}<td{css}>{mark}</td></tr>"
        )
    return '<table class="metrics">\n' + "\n".join(rows) + "\n</table>"


def plots_section(charts: Sequence[Chart], pseudo_masks: Mapping[str, Any] | None) -> str:
    """The curves (inline SVG) and the pseudo masks' statistics; empty without either."""
    parts = []
    if charts:
        parts.append(
            '<div class="charts">' + "".join(f"<figure>{render_svg(chart)}</figure>" for chart in charts) + "</div>"
        )
    if pseudo_masks:
        rows = [
            ("foreground", pseudo_masks["foreground"]),
            ("background", pseudo_masks["background"]),
            ("ignored (conflict region)", pseudo_masks["ignored"]),
            ("foreground precision vs ground-truth masks", pseudo_masks.get("precision")),
            ("foreground recall vs ground-truth masks", pseudo_masks.get("recall")),
        ]
        table = "".join(f"<tr><td>{html.escape(label)}</td>{_cell(value)}</tr>" for label, value in rows)
        parts.append(
            f"<h3>Pseudo masks ({pseudo_masks['images']} training images, % of pixels)</h3>"
            f'<table class="metrics">{table}</table>'
        )
    return "<h2>Curves</h2>\n" + "\n".join(parts) if parts else ""


SMOKE_TEST_NOTE = (
    "Smoke test (spol demo --quick): tiny data and a few training steps check that every stage runs; "
    "its numbers mean nothing. Run `spol demo` for the benchmark."
)


def render_report(
    *,
    metrics: Mapping[str, Mapping[str, Any]],
    samples: Sequence[ReportSample],
    notes: Sequence[str] = (),
    candidates: Sequence[Mapping[str, Any]] = (),
    charts: Sequence[Chart] = (),
    pseudo_masks: Mapping[str, Any] | None = None,
    details: Sequence[tuple[str, str]] = (),
    method: str | None = None,
    smoke_test: bool = False,
    title: str = "SPOL, MFF-CAM and CAM: weakly supervised object localization",
) -> str:
    """The report's HTML text: one self-contained page (see `write_report`).

    Args:
        metrics: the ``metrics.json`` content, ``{"spol": {...}, "mffcam": {...}, "cam": {...}}`` with keys
            ``top1_loc``, ``top5_loc``, ``gt_known_loc``, ``max_box_acc`` (``{"30", "50", "70"}``),
            ``max_box_acc_v2``, ``pxap`` (may be null), ``cls_top1``, ``threshold``; missing or
            null values show as a dash. Without any test metric (no boxed test image) the table is
            replaced by a line saying so (the notes say why).
        samples: pictures to show, see `ReportSample`.
        notes: lines shown under the table (e.g. how the validation split and thresholds were chosen).
        candidates: the training settings tried on val, see `candidates_table` (none: no such section).
        charts: curves to draw (`spol.report.charts`), inline SVG.
        pseudo_masks: `spol.evaluation.pseudo_mask_quality.pseudo_mask_statistics` of the run, or None.
        details: ``(what, value)`` rows shown first: data, splits, recipe, seed, version, time per stage.
        method: the method that localizes by default (``localizer.json``), named in the page.
        smoke_test: say at the top that the numbers mean nothing.
        title: page title.

    Raises:
        ValueError: empty `metrics`, or a sample whose image or maps break the documented layout.
    """
    if not isinstance(metrics, Mapping) or not metrics:
        raise ValueError("metrics must be a non-empty mapping of method name to its metrics (metrics.json content)")
    notes_html = (
        "<ul>\n" + "\n".join(f"<li>{html.escape(note)}</li>" for note in notes) + "\n</ul>"
        if notes
        else '<p class="muted">None.</p>'
    )
    evaluated = any(metric_value(entry, ("max_box_acc_v2",)) is not None for entry in metrics.values())
    table = (
        metrics_table(metrics)
        + '<p class="muted">Percentages except the threshold; the best of each row in bold. SPOL − best other: '
        "SPOL's value minus the best of the other methods', green where SPOL is ahead.</p>"
        if evaluated
        else '<p class="warning">No localization metrics: no test image has a ground-truth box (see the notes).</p>'
    )
    localizing = (
        f"<p><b>{html.escape(METHOD_LABELS.get(method, method))}</b> localizes by default "
        "(<code>localizer.json</code>; <code>spol localize --method</code> picks another).</p>"
        if method
        else ""
    )
    template = Template(resources.files("spol.report").joinpath("template.html").read_text(encoding="utf-8"))
    return template.substitute(
        title=html.escape(("Smoke test: " if smoke_test else "") + title),
        banner=f'<p class="warning">{html.escape(SMOKE_TEST_NOTE)}</p>' if smoke_test else "",
        details=details_table(details) if details else '<p class="muted">No details.</p>',
        metrics_table=table + localizing,
        definitions=definitions_table(),
        notes=notes_html,
        candidates=(
            "<h2>Training settings chosen on val</h2>\n"
            '<p class="muted">Every candidate was trained and scored on the validation split; only the selected '
            "one of each method was evaluated on test.</p>\n" + candidates_table(candidates)
            if candidates
            else ""
        ),
        plots=plots_section(charts, pseudo_masks),
        samples=samples_table(samples),
        metrics_json=html.escape(json.dumps(metrics, indent=2, default=str)),
    )


def write_report(path: str | os.PathLike[str], **content: Any) -> Path:
    """Write the self-contained HTML report to `path` atomically (replacing it) and return the path.

    Args:
        path: output file (``.html``).
        **content: the keyword arguments of `render_report` (``metrics``, ``samples``, ...).

    Raises:
        ValueError: as `render_report`.
        TypeError: a keyword `render_report` does not take.
    """
    path = Path(path)
    write_text_atomic(path, render_report(**content))
    return path


__all__ = [
    "METHOD_LABELS",
    "MethodVisuals",
    "ReportSample",
    "SMOKE_TEST_NOTE",
    "candidates_table",
    "definitions_table",
    "details_table",
    "metrics_table",
    "render_report",
    "samples_table",
    "write_report",
]
