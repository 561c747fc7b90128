"""The one sensor-signal check, on the two shapes rawpy gives sensor data in."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import rawpy

from darkroom.imaging.sensor import sensor_is_blank

BLACK, WHITE = 512, 16383


def raw_with(data: Any, num_colors: int = 3) -> SimpleNamespace:
    return SimpleNamespace(
        raw_image_visible=data,
        num_colors=num_colors,
        black_level_per_channel=[BLACK] * 4,
        white_level=WHITE,
    )


def picture(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Sensor values with a scene in them: a gradient above black plus read noise."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 6000, shape[1])[None, :]
    if len(shape) == 3:
        ramp = ramp[..., None]
    values = BLACK + ramp + rng.normal(0, 3, shape)
    return np.clip(values, 0, WHITE).astype(np.uint16)


def test_a_mosaic_2d_plane_with_a_picture_is_not_blank() -> None:
    assert not sensor_is_blank(raw_with(picture((300, 400))))


@pytest.mark.parametrize("value", [0, BLACK, BLACK + 2000])
def test_a_flat_or_black_2d_plane_is_blank(value: int) -> None:
    assert sensor_is_blank(raw_with(np.full((300, 400), value, dtype=np.uint16)))


def test_a_2d_plane_of_read_noise_only_is_blank() -> None:
    noise = BLACK + np.random.default_rng(1).normal(0, 3, (300, 400))
    assert sensor_is_blank(raw_with(noise.astype(np.uint16)))


def test_a_3d_plane_with_a_picture_is_not_blank() -> None:
    assert not sensor_is_blank(raw_with(picture((200, 300, 3))))


def test_a_3d_plane_is_judged_by_its_colour_channels_not_the_padding() -> None:
    # Three flat colour channels and LibRaw's constant fourth: no picture, although the
    # padding alone would look like signal next to the colours.
    data = np.full((200, 300, 4), BLACK + 2000, dtype=np.uint16)
    data[..., 3] = 0
    assert sensor_is_blank(raw_with(data, num_colors=3))
    lit = picture((200, 300, 4))
    lit[..., 3] = 0
    assert not sensor_is_blank(raw_with(lit, num_colors=3))


def test_an_empty_plane_is_blank_and_a_missing_one_is_not_judged() -> None:
    assert sensor_is_blank(raw_with(np.zeros((0, 0), dtype=np.uint16)))

    class NoPlane:
        @property
        def raw_image_visible(self) -> Any:
            raise AttributeError("no raw plane for this layout")

    assert not sensor_is_blank(NoPlane())


def test_libraw_errors_are_not_swallowed() -> None:
    class Broken:
        @property
        def raw_image_visible(self) -> Any:
            raise rawpy.LibRawIOError("data corrupted")

    with pytest.raises(rawpy.LibRawIOError):
        sensor_is_blank(Broken())
