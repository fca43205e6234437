import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors

from spol.data.transforms import NORMALIZATION, EvalInputs, eval_transform, train_transform


def _image(width: int = 40, height: int = 40) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_eval_transform_resizes_without_crop_to_pixels_in_0_1():
    out = eval_transform(resize=32)(Image.new("RGB", (40, 30), (255, 0, 128)))
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32
    torch.testing.assert_close(out[:, 5, 5], torch.tensor([1.0, 0.0, 128 / 255]))


def test_eval_inputs_give_one_tensor_per_size_equal_to_the_transform():
    image = _image(37, 23)
    small, large = EvalInputs((16, 48))(image)
    assert small.shape == (3, 16, 16) and large.shape == (3, 48, 48)
    assert torch.equal(large, eval_transform(resize=48)(image))


def test_train_transform_moves_mask_with_image():
    # Resize is the identity at 40 px, so a mask equal to red > 127 must still match after crop and flip.
    image = _image()
    mask = tv_tensors.Mask(torch.from_numpy((np.asarray(image)[..., 0] > 127).astype(np.uint8)))
    torch.manual_seed(0)
    for _ in range(5):
        out_image, out_mask = train_transform(resize=40, crop=24, normalization="imagenet")(image, mask)
        assert out_image.shape == (3, 24, 24) and out_mask.shape == (24, 24)
        mean, std = NORMALIZATION["imagenet"]
        red = out_image[0] * std[0] + mean[0]  # the red channel back in [0, 1]
        assert torch.equal(out_mask.bool(), red > 127.5 / 255)


def test_unknown_normalization_is_an_error():
    with pytest.raises(ValueError, match="normalization"):
        train_transform(resize=8, crop=8, normalization="imagenet21k")
    assert set(NORMALIZATION) == {"imagenet", "half"}
