"""Inline SVG charts: well-formed, every point inside the plot area, one legend entry per series."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from spol.report.plots import Chart, Series, render_svg

SVG = "{http://www.w3.org/2000/svg}"


def test_chart_is_valid_svg_with_points_inside_the_axes():
    chart = Chart(
        "box accuracy",
        "threshold",
        "%",
        [
            Series("IoU 50 test", [0.0, 0.5, 0.99], [10.0, 80.0, 120.0]),
            Series("IoU 50 val", [0.0, 1.0], [0.0, 50.0], "4 3"),
        ],
        marks=[(0.4, "chosen on val: 0.40")],
    )
    root = ET.fromstring(render_svg(chart, width=400, height=300))
    frame = root.find(f"{SVG}rect").attrib
    x0, y0 = float(frame["x"]), float(frame["y"])
    x1, y1 = x0 + float(frame["width"]), y0 + float(frame["height"])
    lines = root.findall(f"{SVG}polyline")
    assert len(lines) == 2 and lines[1].attrib["stroke-dasharray"] == "4 3"
    for line in lines:
        for point in line.attrib["points"].split():
            x, y = (float(v) for v in point.split(","))
            assert x0 <= x <= x1 and y0 <= y <= y1  # 120 % is clipped to the top
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "IoU 50 test" in texts and "IoU 50 val" in texts and "chosen on val: 0.40" in texts
    assert "box accuracy" in texts and "threshold" in texts


def test_a_single_epoch_is_a_dot():
    root = ET.fromstring(
        render_svg(Chart("loss", "epoch", "loss", [Series("cam", [1.0], [0.5])], x_range=(1, 2), y_range=(0, 1)))
    )
    assert len(root.findall(f"{SVG}circle")) == 1
