import numpy as np
import pytest
from PIL import Image

from spol.data.images import (
    ALPHA_BACKGROUND,
    SIZE_MISMATCH,
    UnreadableImageError,
    decode_image,
    image_size,
    load_image_rgb,
    read_image_headers,
    verify_images,
)

ORIENTATION = 0x0112


def _halves(width: int = 40, height: int = 20) -> Image.Image:
    """Left half red, right half blue."""
    array = np.zeros((height, width, 3), np.uint8)
    array[:, : width // 2, 0] = 255
    array[:, width // 2 :, 2] = 255
    return Image.fromarray(array)


def test_exif_rotated_jpeg_is_read_as_stored_by_default(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    _halves().save(path, exif=exif, quality=95)
    assert image_size(path) == (40, 20)
    pixels = np.asarray(load_image_rgb(path)).astype(int)
    assert pixels.shape == (20, 40, 3)
    assert pixels[10, 5, 0] > 200 and pixels[10, 35, 2] > 200


def test_exif_rotated_jpeg_is_seen_as_displayed(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # display = stored image rotated 90 degrees clockwise
    _halves().save(path, exif=exif, quality=95)
    with Image.open(path) as raw:
        assert raw.size == (40, 20)
    assert image_size(path, exif_orientation=True) == (20, 40)
    image = load_image_rgb(path, exif_orientation=True)
    assert image.mode == "RGB" and image.size == (20, 40)
    # The stored left (red) half becomes the top after a clockwise quarter turn.
    pixels = np.asarray(image).astype(int)
    assert pixels[5, 10, 0] > 200 and pixels[5, 10, 2] < 50
    assert pixels[35, 10, 2] > 200 and pixels[35, 10, 0] < 50


def test_reduced_decode_keeps_each_side_at_least_the_size_asked_for(tmp_path):
    path = tmp_path / "photo.jpg"
    _halves(640, 480).save(path, quality=95)
    for min_size, decoded in (
        (None, (640, 480)),
        (200, (320, 240)),
        (120, (160, 120)),
        (50, (80, 60)),
        (481, (640, 480)),
    ):
        image, full = decode_image(path, min_size=min_size)
        assert (image.size, full, image.mode) == (decoded, (640, 480), "RGB"), min_size
    # The halves stay where they were: a scaled decode, not a crop.
    pixels = np.asarray(load_image_rgb(path, min_size=120)).astype(int)
    assert pixels[60, 20, 0] > 200 and pixels[60, 140, 2] > 200
    png = tmp_path / "photo.png"
    _halves(640, 480).save(png)
    assert load_image_rgb(png, min_size=120).size == (640, 480)  # only JPEGs have a scaled decode


def test_reduced_decode_of_a_rotated_jpeg_reports_the_displayed_full_size(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    _halves(640, 320).save(path, exif=exif, quality=95)
    image, full = decode_image(path, exif_orientation=True, min_size=150)
    assert full == (320, 640) and image.size == (160, 320)


def test_mirrored_orientation_keeps_the_size(tmp_path):
    path = tmp_path / "mirrored.jpg"
    exif = Image.Exif()
    exif[ORIENTATION] = 2  # horizontal mirror
    _halves().save(path, exif=exif, quality=95)
    assert image_size(path, exif_orientation=True) == (40, 20)
    pixels = np.asarray(load_image_rgb(path, exif_orientation=True)).astype(int)
    assert pixels[10, 5, 2] > 200 and pixels[10, 35, 0] > 200


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "deep.png"
    values = np.array([[0, 257 * 100, 65535, 1000]], dtype=np.uint16)
    Image.fromarray(values).save(path)
    with Image.open(path) as raw:
        assert raw.mode.startswith("I")
    pixels = np.asarray(load_image_rgb(path))
    assert pixels.shape == (1, 4, 3)
    np.testing.assert_array_equal(pixels[0, :, 0], [0, 100, 255, round(1000 / 257)])
    np.testing.assert_array_equal(pixels[..., 0], pixels[..., 2])


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, quality=95)  # pure red in CMYK
    with Image.open(path) as raw:
        assert raw.mode == "CMYK"
    pixel = np.asarray(load_image_rgb(path))[8, 8].astype(int)
    assert pixel[0] > 240 and pixel[1] < 15 and pixel[2] < 15


def test_palette_with_transparency_is_composited_on_white(tmp_path):
    path = tmp_path / "palette.png"
    image = Image.new("P", (4, 2), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.putpixel((3, 1), 1)
    image.save(path, transparency=0)
    pixels = np.asarray(load_image_rgb(path))
    assert tuple(pixels[0, 0]) == ALPHA_BACKGROUND == (255, 255, 255)
    assert tuple(pixels[1, 3]) == (255, 0, 0)


def test_palette_without_transparency_keeps_its_colours(tmp_path):
    path = tmp_path / "palette.png"
    image = Image.new("P", (2, 1), 0)
    image.putpalette([0, 0, 0, 0, 128, 0] + [0] * 762)
    image.putpixel((1, 0), 1)
    image.save(path)
    assert np.asarray(load_image_rgb(path)).tolist() == [[[0, 0, 0], [0, 128, 0]]]


def test_rgba_and_la_are_composited_on_white(tmp_path):
    rgba = np.array([[[0, 0, 255, 0], [0, 0, 255, 255], [255, 0, 0, 128]]], dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    pixels = np.asarray(load_image_rgb(tmp_path / "rgba.png")).astype(int)
    assert pixels[0, 0].tolist() == [255, 255, 255]
    assert pixels[0, 1].tolist() == [0, 0, 255]
    # Half-transparent red over white: green and blue are white * (1 - 128/255).
    np.testing.assert_allclose(pixels[0, 2], [255, 255 * 127 / 255, 255 * 127 / 255], atol=1)

    la = np.array([[[10, 0], [10, 255]]], dtype=np.uint8)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    assert np.asarray(load_image_rgb(tmp_path / "la.png")).tolist() == [[[255] * 3, [10] * 3]]


def test_grayscale_and_bilevel(tmp_path):
    Image.fromarray(np.array([[0, 77]], dtype=np.uint8)).save(tmp_path / "gray.png")
    assert np.asarray(load_image_rgb(tmp_path / "gray.png")).tolist() == [[[0] * 3, [77] * 3]]
    bilevel = Image.new("1", (2, 1), 0)
    bilevel.putpixel((1, 0), 1)
    bilevel.save(tmp_path / "bilevel.png")
    assert np.asarray(load_image_rgb(tmp_path / "bilevel.png")).tolist() == [[[0] * 3, [255] * 3]]


def test_unreadable_and_missing_images(tmp_path):
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"this is not an image")
    with pytest.raises(UnreadableImageError, match="garbage.jpg"):
        load_image_rgb(garbage)
    with pytest.raises(UnreadableImageError, match="garbage.jpg"):
        image_size(garbage)
    assert issubclass(UnreadableImageError, ValueError)
    with pytest.raises(FileNotFoundError):
        load_image_rgb(tmp_path / "absent.jpg")
    with pytest.raises(FileNotFoundError):
        image_size(tmp_path / "absent.jpg")


def _truncated_jpeg(path):
    buffer = path.with_suffix(".full.jpg")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, quality=95)
    data = buffer.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    buffer.unlink()


def test_truncated_jpeg_has_a_header_but_does_not_decode(tmp_path):
    path = tmp_path / "truncated.jpg"
    _truncated_jpeg(path)
    assert image_size(path) == (64, 64)
    with pytest.raises(UnreadableImageError, match="truncated.jpg"):
        load_image_rgb(path)


def test_verify_images_reports_each_problem_in_order(tmp_path):
    good = tmp_path / "good.png"
    _halves().save(good)
    truncated = tmp_path / "truncated.jpg"
    _truncated_jpeg(truncated)
    missing = tmp_path / "missing.png"
    paths = [good, truncated, missing, good]
    problems = verify_images(paths, workers=1, progress=False)
    assert [p.path for p in problems] == [str(truncated), str(missing)]
    assert "missing" in problems[1].problem
    # Stated sizes: the second `good` claims another size.
    problems = verify_images(paths, workers=1, sizes=[(40, 20), None, None, (20, 40)], progress=False)
    assert [p.path for p in problems] == [str(truncated), str(missing), str(good)]
    assert problems[2].problem.startswith(SIZE_MISMATCH) and "40x20" in problems[2].problem
    with pytest.raises(ValueError, match="sizes"):
        verify_images(paths, sizes=[None])


def test_parallel_results_equal_serial_results(tmp_path):
    paths = []
    for i in range(40):
        path = tmp_path / f"{i}.png"
        if i % 7 == 3:
            path.write_bytes(b"broken")
        elif i % 11 != 5:
            Image.new("RGB", (10 + i, 5 + i)).save(path)
        paths.append(path)
    serial = verify_images(paths, workers=1, progress=False)
    assert serial == verify_images(paths, workers=4, progress=False)
    assert len(serial) == len([i for i in range(40) if i % 7 == 3 or i % 11 == 5])
    sizes = read_image_headers(paths, workers=4, progress=False)
    assert [s.size for s in sizes if not isinstance(s, Exception)] == [
        (10 + i, 5 + i) for i in range(40) if i % 7 != 3 and i % 11 != 5
    ]
    assert isinstance(sizes[3], UnreadableImageError) and isinstance(sizes[5], FileNotFoundError)
