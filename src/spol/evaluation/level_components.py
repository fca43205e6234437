"""The protocol's contour boxes at many thresholds from one sweep over the map's levels.

The reference thresholds an 8-bit map and traces it with ``cv2.findContours`` once per
threshold. The masks ``u > cut`` are nested, so a single union-find sweep over the pixels in
decreasing value builds every mask's 8-connected components (OpenCV's foreground connectivity)
as the cut falls, keeping for each component its pixel bounding box, the area of its outer
contour polygon and its Euler number. A second sweep in increasing value does the same for the
4-connected background, whose enclosed components are the holes. That is enough to give
OpenCV's boxes exactly:

* A contour's ``cv2.boundingRect`` is the bounding box of the pixels it runs through: an outer
  contour's box is its component's pixel box; a hole contour runs through the foreground pixels
  4-adjacent to the hole, so its box is the hole's pixel box grown by one pixel.
* ``RETR_TREE`` lists every outer and hole contour, which is MaxBoxAccV2's set of boxes.
* The largest contour by ``cv2.contourArea`` (single-contour mode) needs polygon areas. The
  polygon through the boundary pixels' centres of a hole-free component has the area of the
  2 x 2 pixel quads it covers: 1 for a full quad, 1/2 for a quad with three pixels (counted
  here doubled, as integers). On a tie ``max()`` keeps the first contour OpenCV lists, and it
  lists top-level contours in reverse raster order of their first pixels (OpenCV 4.8 to 4.14),
  so the tied component whose first pixel comes last wins. A component with holes has the
  quad area as a lower bound and its bounding box as an upper bound; where the bounds do not
  single out one component, OpenCV decides (`needs_opencv`).

No library gives per-threshold component boxes (OpenCV and scikit-image label one mask at a
time, which is the reference's cost), so the sweep is written here and compiled with numba.
Holes are counted by Gray's 2 x 2 quad formula for the Euler number (8-connected foreground):
``4 E = n(Q1) - n(Q3) - 2 n(QD)``, and holes = components - E.
"""

from __future__ import annotations

import numba
import numpy as np

from spol.scoremaps import protocol_box

# The 8 neighbours of a pixel as (dy, dx), clockwise from the top-left.
_RING = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))


def _quad_euler4(pattern: int) -> int:
    """4 x the Euler number contribution of a 2 x 2 quad (bits tl, tr, bl, br), 8-connected foreground."""
    count = bin(pattern).count("1")
    if count == 1:
        return 1
    if count == 3:
        return -1
    return -2 if pattern in (0b1001, 0b0110) else 0


def _quad_area2(pattern: int) -> int:
    """2 x the contour-polygon area a 2 x 2 quad covers: a full square or a half-square triangle."""
    return {4: 2, 3: 1}.get(bin(pattern).count("1"), 0)


def _neighbour_groups(nb: int, connectivity: int) -> list[int]:
    """One representative neighbour per group of on neighbours connected within the neighbourhood.

    With ``connectivity=8`` every on neighbour touches the centre; with 4 only the edge neighbours
    do, and corners only link them (the background's connectivity).
    """
    members = [j for j in range(8) if (nb >> j) & 1]

    def adjacent(a: int, b: int) -> bool:
        dy, dx = abs(_RING[a][0] - _RING[b][0]), abs(_RING[a][1] - _RING[b][1])
        return max(dy, dx) == 1 if connectivity == 8 else dy + dx == 1

    representatives = []
    seen: set[int] = set()
    for j in members:
        if j in seen:
            continue
        group, stack = [j], [j]
        seen.add(j)
        while stack:
            a = stack.pop()
            for b in members:
                if b not in seen and adjacent(a, b):
                    seen.add(b)
                    group.append(b)
                    stack.append(b)
        touching = [k for k in sorted(group) if connectivity == 8 or 0 in _RING[k]]
        if touching:
            representatives.append(touching[0])
    return representatives


def _neighbourhood_tables() -> dict[str, np.ndarray]:
    """Per 8-bit neighbourhood (bit j = neighbour j is on), what switching the centre on involves.

    ``euler4`` and ``area2``: the change of the four quads' Euler and area contributions.
    ``groups8`` / ``groups4`` (with counts): one representative neighbour per group of on
    neighbours already connected among themselves, so the centre needs one union per group.
    """
    position = {d: j for j, d in enumerate(_RING)}
    tables = {name: np.zeros(256, np.int64) for name in ("euler4", "area2", "count8", "count4")}
    tables["groups8"] = np.zeros((256, 4), np.int64)
    tables["groups4"] = np.zeros((256, 4), np.int64)
    for nb in range(256):
        for qy in (-1, 0):
            for qx in (-1, 0):
                cells = ((qy, qx), (qy, qx + 1), (qy + 1, qx), (qy + 1, qx + 1))
                for centre, sign in ((0, -1), (1, 1)):
                    pattern = 0
                    for bit, cell in enumerate(cells):
                        on = centre if cell == (0, 0) else (nb >> position[cell]) & 1
                        pattern |= on << bit
                    tables["euler4"][nb] += sign * _quad_euler4(pattern)
                    tables["area2"][nb] += sign * _quad_area2(pattern)
        for connectivity in (8, 4):
            representatives = _neighbour_groups(nb, connectivity)
            tables[f"count{connectivity}"][nb] = len(representatives)
            tables[f"groups{connectivity}"][nb, : len(representatives)] = representatives
    return tables


_TABLES = _neighbourhood_tables()

# Index arithmetic is unsigned on purpose: numba then skips the negative-index wraparound it adds
# to every signed array access, which is a large share of the sweep's instructions.
_U1 = np.uint64(1)
_U2, _U3, _U4, _U5, _U6, _U7 = (np.uint64(i) for i in range(2, 8))
_U32 = np.uint64(32)
_LOW32 = np.uint64(0xFFFFFFFF)
# Columns of a component's statistics; FIRST is the raster index y * W + x of its first pixel.
_X0, _X1, _Y0, _Y1, _AREA2, _EULER4, _FIRST = range(7)


@numba.njit(cache=True, nogil=True, inline="always")
def _find(parent: np.ndarray, node: np.uint64) -> np.uint64:
    while parent[node] != node:
        grandparent = np.uint64(parent[parent[node]])
        parent[node] = grandparent
        node = grandparent
    return node


@numba.njit(cache=True, nogil=True, inline="always")
def _add_root(parent: np.ndarray, roots: np.ndarray, root_slot: np.ndarray, num_roots: int, node: np.uint64) -> int:
    """Make `node` a root (statistics set by the caller); returns the new number of roots."""
    parent[node] = node
    roots[num_roots] = node
    root_slot[node] = num_roots
    return num_roots + 1


@numba.njit(cache=True, nogil=True, inline="always")
def _union(
    parent: np.ndarray,
    stats: np.ndarray,
    roots: np.ndarray,
    root_slot: np.ndarray,
    num_roots: int,
    r: np.uint64,
    s: np.uint64,
) -> np.uint64:
    """Join distinct roots `r` and `s`, the older node staying the root (returned); one root fewer."""
    if s < r:
        s, r = r, s
    parent[s] = r
    stats[r, _X0] = min(stats[r, _X0], stats[s, _X0])
    stats[r, _X1] = max(stats[r, _X1], stats[s, _X1])
    stats[r, _Y0] = min(stats[r, _Y0], stats[s, _Y0])
    stats[r, _Y1] = max(stats[r, _Y1], stats[s, _Y1])
    stats[r, _AREA2] += stats[s, _AREA2]
    stats[r, _EULER4] += stats[s, _EULER4]
    stats[r, _FIRST] = min(stats[r, _FIRST], stats[s, _FIRST])
    slot = root_slot[s]
    moved = roots[num_roots - 1]
    roots[slot] = moved
    root_slot[moved] = slot
    return r


@numba.njit(cache=True, nogil=True, inline="always")
def _set_stats(stats: np.ndarray, r: np.uint64, x: int, y: int, area2: int, euler4: int, raster: int) -> None:
    stats[r, _X0] = x
    stats[r, _X1] = x
    stats[r, _Y0] = y
    stats[r, _Y1] = y
    stats[r, _AREA2] = area2
    stats[r, _EULER4] = euler4
    stats[r, _FIRST] = raster


@numba.njit(cache=True, nogil=True, inline="always")
def _add_pixel(stats: np.ndarray, r: np.uint64, x: int, y: int, area2: int, euler4: int, raster: int) -> None:
    stats[r, _X0] = min(stats[r, _X0], x)
    stats[r, _X1] = max(stats[r, _X1], x)
    stats[r, _Y0] = min(stats[r, _Y0], y)
    stats[r, _Y1] = max(stats[r, _Y1], y)
    stats[r, _AREA2] += area2
    stats[r, _EULER4] += euler4
    stats[r, _FIRST] = min(stats[r, _FIRST], raster)


@numba.njit(cache=True, nogil=True)
def _pixels_by_level(u: np.ndarray, padded_width: int, descending: bool) -> tuple[np.ndarray, np.ndarray]:
    """Counting sort: ``(ends, pixels)``, pixels as ``row << 32 | padded flat index`` in visiting order.

    The pixels of ``level`` end at ``ends[level]`` (uint64); within a level they keep raster order.
    """
    height, width = u.shape
    counts = np.zeros(256, np.int64)
    for y in range(height):
        for x in range(width):
            counts[u[y, x]] += 1
    fill = np.zeros(256, np.int64)
    total = 0
    for i in range(256):
        level = 255 - i if descending else i
        fill[level] = total
        total += counts[level]
    pixels = np.empty(height * width, np.uint64)
    for y in range(height):
        for x in range(width):
            level = u[y, x]
            pixels[fill[level]] = (np.uint64(y) << _U32) | np.uint64((y + 1) * padded_width + x + 1)
            fill[level] += 1
    return fill.astype(np.uint64), pixels  # each level's fill position has reached its end


@numba.njit(cache=True, nogil=True)
def _neighbour_shifts(padded_width: int) -> np.ndarray:
    """Neighbour j (ring order) of the padded index q is ``q - (padded_width + 1) + shifts[j]``."""
    w = padded_width
    return np.array([0, 1, 2, w + 2, 2 * w + 2, 2 * w + 1, 2 * w, w], np.uint64)


@numba.njit(cache=True, nogil=True, inline="always")
def _unpack(pixel: np.uint64, pw: np.uint64) -> tuple[np.uint64, int, int]:
    """``(padded index, x, y)`` of a pixel packed by `_pixels_by_level` (``pw``: padded width)."""
    q = pixel & _LOW32
    row = pixel >> _U32
    return q, np.int64(q - (row + _U1) * pw - _U1), np.int64(row)


@numba.njit(cache=True, nogil=True, inline="always")
def _switch_on(
    on: np.ndarray, pixel: np.uint64, pw: np.uint64, group_count: np.ndarray
) -> tuple[np.uint64, int, int, np.uint64, int]:
    """Turn a packed pixel on: ``(padded index, x, y, neighbourhood before, its number of on groups)``."""
    q, x, y = _unpack(pixel, pw)
    nb = _neighbourhood(on, q, pw)
    on[q] = 1
    return q, x, y, nb, group_count[nb]


@numba.njit(cache=True, nogil=True, inline="always")
def _neighbourhood(on: np.ndarray, q: np.uint64, pw: np.uint64) -> np.uint64:
    """The 8-bit neighbourhood of padded index q (bit j: neighbour j in ring order is on)."""
    return (
        np.uint64(on[q - pw - _U1])
        | (np.uint64(on[q - pw]) << _U1)
        | (np.uint64(on[q - pw + _U1]) << _U2)
        | (np.uint64(on[q + _U1]) << _U3)
        | (np.uint64(on[q + pw + _U1]) << _U4)
        | (np.uint64(on[q + pw]) << _U5)
        | (np.uint64(on[q + pw - _U1]) << _U6)
        | (np.uint64(on[q - _U1]) << _U7)
    )


@numba.njit(cache=True, nogil=True)
def _component_forest(capacity: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Union-find storage for `capacity` component nodes: parents, statistics, root list, root slots."""
    parent = np.empty(capacity, np.uint32)
    stats = np.empty((capacity, 7), np.int64)  # columns _X0 ... _FIRST
    roots = np.empty(capacity, np.uint32)
    root_slot = np.empty(capacity, np.uint32)
    return parent, stats, roots, root_slot


@numba.njit(cache=True, nogil=True)
def _append_box(boxes: np.ndarray, count: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    if count == boxes.shape[0]:
        grown = np.empty((2 * count + 16, 4), np.int64)
        grown[:count] = boxes[:count]
        boxes = grown
    boxes[count, 0] = x0
    boxes[count, 1] = y0
    boxes[count, 2] = x1
    boxes[count, 3] = y1
    return boxes


_protocol_box = numba.njit(cache=True, nogil=True, inline="always")(protocol_box)


@numba.njit(cache=True, nogil=True, inline="always")
def _append_contour_box(
    boxes: np.ndarray, count: int, x0: int, y0: int, x1: int, y1: int, width: int, height: int
) -> np.ndarray:
    """Append the protocol box of a contour through the pixels ``[x0, x1] x [y0, y1]`` (inclusive).

    ``cv2.boundingRect`` of such a contour is ``(x0, y0, x1 - x0 + 1, y1 - y0 + 1)``.
    """
    bx0, by0, bx1, by1 = _protocol_box(x0, y0, x1 - x0 + 1, y1 - y0 + 1, width, height)
    return _append_box(boxes, count, bx0, by0, bx1, by1)


@numba.njit(cache=True, nogil=True, inline="always")
def _append_component_box(
    boxes: np.ndarray, count: int, stats: np.ndarray, r: np.uint64, width: int, height: int
) -> np.ndarray:
    """Append the protocol box of component `r`'s outer contour (its pixel bounding box)."""
    return _append_contour_box(boxes, count, stats[r, _X0], stats[r, _Y0], stats[r, _X1], stats[r, _Y1], width, height)


@numba.njit(cache=True, nogil=True)
def _foreground_sweep(
    u: np.ndarray,
    cuts: np.ndarray,
    multi_contour: bool,
    euler4_delta: np.ndarray,
    area2_delta: np.ndarray,
    groups: np.ndarray,
    group_count: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Outer-contour boxes at each cut (distinct, decreasing): ``(needs_opencv, holes, offsets, boxes)``."""
    height, width = u.shape
    padded_width = width + 2
    ends, pixels = _pixels_by_level(u, padded_width, True)
    pw = np.uint64(padded_width)
    base = pw + _U1
    shifted = _neighbour_shifts(padded_width)
    on = np.zeros((height + 2) * padded_width, np.uint8)
    label = np.empty((height + 2) * padded_width, np.uint32)
    # Component nodes, created only for pixels with no on neighbour (local maxima), so few on smooth maps.
    parent, stats, roots, root_slot = _component_forest(height * width)
    num_cuts = cuts.shape[0]
    needs_opencv = np.zeros(num_cuts, np.bool_)
    holes = np.zeros(num_cuts, np.int64)
    box_offsets = np.zeros(num_cuts + 1, np.int64)
    boxes = np.empty((2 * num_cuts + 16, 4), np.int64)
    num_boxes = 0
    num_roots = 0
    num_nodes = np.uint64(0)
    # While there is a single component its statistics live in these locals and its node is left
    # stale (the fast path: most pixels of a smooth map join a single component).
    one_x0, one_x1, one_y0, one_y1, one_area2, one_euler4, one_first = 0, 0, 0, 0, 0, 0, 0
    total_euler4 = 0  # 4 x the Euler number of the mask
    cut_index = 0
    k = np.uint64(0)
    last_level = cuts[num_cuts - 1] + 1 if num_cuts else 256  # the last cut's mask is complete there
    for level in range(255, last_level - 1, -1):
        while k < ends[level]:
            q, x, y, nb, num_groups = _switch_on(on, pixels[k], pw, group_count)
            k += _U1
            d_area2 = area2_delta[nb]
            d_euler4 = euler4_delta[nb]
            total_euler4 += d_euler4
            raster = y * width + x
            if num_groups == 0:  # a new component
                if num_roots == 1:  # the single component's node was left stale: bring it up to date
                    r = np.uint64(roots[0])
                    _set_stats(stats, r, one_x0, one_y0, one_area2, one_euler4, one_first)
                    stats[r, _X1], stats[r, _Y1] = one_x1, one_y1
                r = num_nodes
                num_nodes += _U1
                _set_stats(stats, r, x, y, d_area2, d_euler4, raster)
                num_roots = _add_root(parent, roots, root_slot, num_roots, r)
                if num_roots == 1:
                    one_x0, one_x1, one_y0, one_y1 = x, x, y, y
                    one_area2, one_euler4, one_first = d_area2, d_euler4, raster
            elif num_roots == 1:
                r = np.uint64(roots[0])
                one_x0 = min(one_x0, x)
                one_x1 = max(one_x1, x)
                one_y0 = min(one_y0, y)
                one_y1 = max(one_y1, y)
                one_area2 += d_area2
                one_euler4 += d_euler4
                one_first = min(one_first, raster)
            else:
                r = _find(parent, np.uint64(label[q - base + shifted[groups[nb, 0]]]))
                for g in range(1, num_groups):
                    s = _find(parent, np.uint64(label[q - base + shifted[groups[nb, g]]]))
                    if s != r:
                        r = _union(parent, stats, roots, root_slot, num_roots, r, s)
                        num_roots -= 1
                _add_pixel(stats, r, x, y, d_area2, d_euler4, raster)
                if num_roots == 1:  # the last merge: back to the fast path
                    one_x0, one_x1, one_y0, one_y1 = stats[r, _X0], stats[r, _X1], stats[r, _Y0], stats[r, _Y1]
                    one_area2, one_euler4, one_first = stats[r, _AREA2], stats[r, _EULER4], stats[r, _FIRST]
            label[q] = r
        # The pixels on are now u >= level, the mask of cut level - 1.
        if cuts[cut_index] != level - 1:
            continue
        holes[cut_index] = num_roots - total_euler4 // 4
        if num_roots == 0:  # an empty mask: the protocol's no-contour box is the caller's
            needs_opencv[cut_index] = True
        elif num_roots == 1:
            # One outer contour; it outweighs its holes' contours when it covers any quad (its polygon
            # area is the quads' plus the holes').
            x0, x1, y0, y1 = one_x0, one_x1, one_y0, one_y1
            if multi_contour or one_area2 > 0 or one_euler4 == 4:
                boxes = _append_contour_box(boxes, num_boxes, x0, y0, x1, y1, width, height)
            else:
                needs_opencv[cut_index] = True
                boxes = _append_box(boxes, num_boxes, x0, y0, x1, y1)
            num_boxes += 1
        elif multi_contour:
            for i in range(num_roots):
                r = np.uint64(roots[i])
                boxes = _append_component_box(boxes, num_boxes, stats, r, width, height)
                num_boxes += 1
        else:
            # The largest outer contour. Without holes every component is top level and its area is
            # exact; OpenCV lists top-level contours in reverse raster order of their first pixels
            # and max() keeps the first listed, so on a tie the component starting last wins.
            best = np.uint64(roots[0])
            for i in range(1, num_roots):
                r = np.uint64(roots[i])
                if stats[r, _AREA2] > stats[best, _AREA2] or (
                    stats[r, _AREA2] == stats[best, _AREA2] and stats[r, _FIRST] > stats[best, _FIRST]
                ):
                    best = r
            exact = True
            if holes[cut_index] > 0:
                # The winner's outer contour beats its own holes' when it covers any quad; every other
                # contour must be strictly smaller, with a component's outer area at most its bounding
                # box when it has holes.
                exact = stats[best, _AREA2] > 0 or stats[best, _EULER4] == 4
                for i in range(num_roots):
                    r = np.uint64(roots[i])
                    if r == best:
                        continue
                    if stats[r, _EULER4] == 4:
                        upper = stats[r, _AREA2]
                    else:
                        upper = 2 * (stats[r, _X1] - stats[r, _X0]) * (stats[r, _Y1] - stats[r, _Y0])
                    if upper >= stats[best, _AREA2]:
                        exact = False
                        break
            if exact:
                boxes = _append_component_box(boxes, num_boxes, stats, best, width, height)
                num_boxes += 1
            else:
                needs_opencv[cut_index] = True
                mask_x0, mask_x1, mask_y0, mask_y1 = width, -1, height, -1
                for i in range(num_roots):
                    r = np.uint64(roots[i])
                    mask_x0 = min(mask_x0, stats[r, _X0])
                    mask_x1 = max(mask_x1, stats[r, _X1])
                    mask_y0 = min(mask_y0, stats[r, _Y0])
                    mask_y1 = max(mask_y1, stats[r, _Y1])
                boxes = _append_box(boxes, num_boxes, mask_x0, mask_y0, mask_x1, mask_y1)
                num_boxes += 1
        cut_index += 1
        box_offsets[cut_index] = num_boxes
    return needs_opencv, holes, box_offsets, boxes[:num_boxes]


@numba.njit(cache=True, nogil=True)
def _hole_sweep(
    u: np.ndarray, cuts: np.ndarray, groups: np.ndarray, group_count: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Hole-contour boxes at each cut (distinct, increasing): ``(offsets, boxes)``.

    The background ``u <= cut`` grows with the cut; its 4-connected components that do not reach
    the zero padding around the image (one component, node 0) are the mask's holes.
    """
    height, width = u.shape
    padded_width = width + 2
    padded = (height + 2) * padded_width
    ends, pixels = _pixels_by_level(u, padded_width, False)
    pw = np.uint64(padded_width)
    base = pw + _U1
    shifted = _neighbour_shifts(padded_width)
    on = np.zeros(padded, np.uint8)
    label = np.empty(padded, np.uint32)
    for i in range(padded_width):
        for q in (i, padded - padded_width + i):
            on[q] = 1
            label[q] = 0
    for i in range(height + 2):
        for q in (i * padded_width, i * padded_width + padded_width - 1):
            on[q] = 1
            label[q] = 0
    # The foreground's statistics columns; area, Euler and first unused. Node 0 is the outside.
    parent, stats, roots, root_slot = _component_forest(height * width + 1)
    parent[0] = 0
    _set_stats(stats, np.uint64(0), 0, 0, 0, 0, 0)  # the outside's box is never reported
    num_cuts = cuts.shape[0]
    box_offsets = np.zeros(num_cuts + 1, np.int64)
    boxes = np.empty((2 * num_cuts + 16, 4), np.int64)
    num_boxes = 0
    num_roots = 0  # holes only: the outside is never listed
    num_nodes = np.uint64(1)
    k = np.uint64(0)
    cut_index = 0
    for level in range(cuts[num_cuts - 1] + 1 if num_cuts else 0):  # up to the last cut's background
        while k < ends[level]:
            q, x, y, nb, num_groups = _switch_on(on, pixels[k], pw, group_count)
            k += _U1
            if num_groups and num_roots == 0:  # no holes yet: all background is the outside
                label[q] = 0
                continue
            if num_groups == 0:  # a new background component: a hole until it meets the outside
                r = num_nodes
                num_nodes += _U1
                _set_stats(stats, r, x, y, 0, 0, 0)
                num_roots = _add_root(parent, roots, root_slot, num_roots, r)
            else:
                r = _find(parent, np.uint64(label[q - base + shifted[groups[nb, 0]]]))
                for g in range(1, num_groups):  # the outside is node 0, the oldest: it stays a root
                    s = _find(parent, np.uint64(label[q - base + shifted[groups[nb, g]]]))
                    if s != r:
                        r = _union(parent, stats, roots, root_slot, num_roots, r, s)
                        num_roots -= 1
                _add_pixel(stats, r, x, y, 0, 0, 0)
            label[q] = r
        if cuts[cut_index] != level:
            continue
        for i in range(num_roots):
            r = np.uint64(roots[i])
            # A hole contour runs through the foreground pixels 4-adjacent to the hole.
            boxes = _append_contour_box(
                boxes,
                num_boxes,
                stats[r, _X0] - 1,
                stats[r, _Y0] - 1,
                stats[r, _X1] + 1,
                stats[r, _Y1] + 1,
                width,
                height,
            )
            num_boxes += 1
        cut_index += 1
        box_offsets[cut_index] = num_boxes
    return box_offsets, boxes[:num_boxes]


def contour_boxes_at_cuts(
    u: np.ndarray, cuts: np.ndarray, multi_contour: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The protocol's contour boxes of the masks ``u > cut`` for many cuts at once.

    Args:
        u: 2-D uint8 map (the protocol's ``uint8(s * 255)``).
        cuts: Distinct cuts in decreasing order, each in ``[-1, 254]`` (-1: every pixel).
        multi_contour: Every contour's box, outer and hole (MaxBoxAccV2), instead of the largest one's.

    Returns:
        ``(needs_opencv, offsets, boxes)``: the boxes of cut ``i`` are
        ``boxes[offsets[i]:offsets[i + 1]]`` as ``(x0, y0, min(x + w, W - 1), min(y + h, H - 1))``;
        in multi-contour mode in no particular order. Where ``needs_opencv[i]`` (possible area
        ties in single-contour mode) `cv2.findContours` must decide, and the cut's one box is
        instead the inclusive pixel bounding box of the mask, the region to trace; an empty mask
        also needs OpenCV and has no box.

    Raises:
        ValueError: `u` is not 2-D uint8 or has 2**32 pixels or more, or `cuts` are not distinct,
            decreasing and in range.
    """
    u = np.ascontiguousarray(u)
    cuts = np.ascontiguousarray(cuts, dtype=np.int64)
    if u.dtype != np.uint8 or u.ndim != 2:
        raise ValueError(f"u must be a 2-D uint8 map, got {u.dtype} with shape {u.shape}")
    if (u.shape[0] + 2) * (u.shape[1] + 2) >= 2**32:  # pixels are packed with 32-bit indices
        raise ValueError(f"map of shape {u.shape} is too large for the level sweep; resize it first")
    if cuts.ndim != 1 or (len(cuts) and (cuts[0] > 254 or cuts[-1] < -1 or (np.diff(cuts) >= 0).any())):
        raise ValueError(f"cuts must be distinct, decreasing and in [-1, 254], got {cuts.tolist()}")
    needs_opencv, holes, offsets, boxes = _foreground_sweep(
        u, cuts, multi_contour, _TABLES["euler4"], _TABLES["area2"], _TABLES["groups8"], _TABLES["count8"]
    )
    if multi_contour and holes.any():
        with_holes = np.flatnonzero(holes)[::-1]  # increasing cuts for the background sweep
        hole_offsets, hole_boxes = _hole_sweep(
            u, np.ascontiguousarray(cuts[with_holes]), _TABLES["groups4"], _TABLES["count4"]
        )
        offsets, boxes = _merge_segments(offsets, boxes, with_holes, hole_offsets, hole_boxes)
    return needs_opencv, offsets, boxes


def _merge_segments(
    offsets: np.ndarray, boxes: np.ndarray, where: np.ndarray, extra_offsets: np.ndarray, extra_boxes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Append segment ``j`` of the extra boxes to segment ``where[j]`` of the boxes."""
    counts = np.diff(offsets)
    extra_counts = np.zeros_like(counts)
    extra_counts[where] = np.diff(extra_offsets)
    merged_offsets = np.concatenate([[0], np.cumsum(counts + extra_counts)])
    merged = np.empty((int(merged_offsets[-1]), 4), np.int64)
    segment = np.repeat(np.arange(len(counts)), counts)
    merged[merged_offsets[:-1][segment] + np.arange(len(boxes)) - offsets[:-1][segment]] = boxes
    extra_segment = np.repeat(where, np.diff(extra_offsets))
    first_extra = merged_offsets[:-1] + counts
    extra_start = np.repeat(extra_offsets[:-1], np.diff(extra_offsets))
    merged[first_extra[extra_segment] + np.arange(len(extra_boxes)) - extra_start] = extra_boxes
    return merged_offsets, merged
