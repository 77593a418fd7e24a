"""Safe image decoding: every bad input is one clear ImageRejected, good ones become RGB."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from server.engine.errors import ImageRejected
from server.engine.vision import images
from server.engine.vision.images import decode_image, load_image, read_image_bytes


def _encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return Image.fromarray(data.astronaut())


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    )


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` RGB pixels, with a tiny IDAT:
    decoding it for real would fail as truncated, so a pixel-limit message proves the
    image was rejected from its header alone."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


def _complete_black_bilevel_png(side: int) -> bytes:
    """A real, complete 1-bit PNG of ``side`` x ``side`` black pixels, compressed as a
    stream so the test never holds the raw pixels."""
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    row = b"\x00" * (1 + (side + 7) // 8)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


# --- rejected inputs -------------------------------------------------------------------


def test_empty_bytes_are_rejected() -> None:
    with pytest.raises(ImageRejected, match="upload.jpg: the file is empty"):
        decode_image(b"", "upload.jpg")


def test_random_bytes_are_rejected_as_not_an_image() -> None:
    noise = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    with pytest.raises(ImageRejected, match="noise.bin: not an image"):
        decode_image(noise, "noise.bin")


def test_a_text_file_is_rejected_as_not_an_image() -> None:
    with pytest.raises(ImageRejected, match="not an image"):
        decode_image(b"references:\n  - path: refs\n" * 20, "project.yaml")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_image_is_rejected(astronaut: Image.Image, fmt: str) -> None:
    whole = _encode(astronaut, fmt)
    assert decode_image(whole).shape == (512, 512, 3)  # the uncut image is fine
    with pytest.raises(ImageRejected, match="damaged or truncated"):
        decode_image(whole[: len(whole) // 2], f"half.{fmt.lower()}")


def test_header_claiming_huge_size_is_rejected_as_a_bomb() -> None:
    bomb = _png_header_only(60_000, 60_000)
    assert len(bomb) < 200
    with pytest.raises(ImageRejected, match="pixel"):
        decode_image(bomb, "bomb.png")


def test_image_over_the_pixel_limit_is_rejected_before_decoding() -> None:
    # 8000x7000 = 56 M pixels: over our 50 M limit, under Pillow's own bomb warning.
    with pytest.raises(ImageRejected, match="8000x7000 pixels is over the 50000000 pixel limit"):
        decode_image(_png_header_only(8000, 7000), "big.png")


def test_complete_compressible_png_over_the_pixel_limit_is_rejected() -> None:
    bomb = _complete_black_bilevel_png(9000)
    assert len(bomb) < 200_000  # 81 M pixels in a few kilobytes
    with pytest.raises(ImageRejected, match="9000x9000 pixels is over"):
        decode_image(bomb, "zeros.png")


def test_pixel_limit_is_read_at_call_time(
    astronaut: Image.Image, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 100 * 100)
    with pytest.raises(ImageRejected, match="512x512 pixels"):
        decode_image(_encode(astronaut, "PNG"))


def test_tiny_image_is_rejected_as_too_small() -> None:
    tiny = _encode(Image.new("RGB", (2, 2), (10, 20, 30)), "PNG")
    with pytest.raises(ImageRejected, match="dot.png: 2x2 is too small"):
        decode_image(tiny, "dot.png")


def test_thin_image_is_rejected_as_too_small() -> None:
    with pytest.raises(ImageRejected, match="too small"):
        decode_image(_encode(Image.new("RGB", (400, 4)), "PNG"))


def test_bytes_over_the_byte_limit_are_rejected(
    astronaut: Image.Image, monkeypatch: pytest.MonkeyPatch
) -> None:
    png = _encode(astronaut, "PNG")
    monkeypatch.setattr(images, "MAX_IMAGE_BYTES", 1000)
    with pytest.raises(ImageRejected, match="over the 1000 byte limit"):
        decode_image(png, "big.png")


def test_file_over_the_byte_limit_is_rejected_before_reading(
    tmp_path: Path, astronaut: Image.Image, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(_encode(astronaut, "PNG"))
    monkeypatch.setattr(images, "MAX_IMAGE_BYTES", 1000)
    with pytest.raises(ImageRejected, match="big.png: .* over the 1000 byte limit"):
        read_image_bytes(path)


def test_missing_file_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ImageRejected, match="gone.jpg: cannot read"):
        load_image(tmp_path / "gone.jpg")


def test_a_folder_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(ImageRejected, match="dir.png"):
        load_image(tmp_path / "dir.png")


# --- accepted inputs -------------------------------------------------------------------


def test_jpeg_decodes_to_rgb_uint8(astronaut: Image.Image) -> None:
    out = decode_image(_encode(astronaut, "JPEG", quality=95))
    assert out.shape == (512, 512, 3) and out.dtype == np.uint8
    # RGB order, not OpenCV's BGR: close to the source pixels.
    assert np.abs(out.astype(int) - data.astronaut().astype(int)).mean() < 5


def test_png_decodes_losslessly(astronaut: Image.Image) -> None:
    np.testing.assert_array_equal(decode_image(_encode(astronaut, "PNG")), data.astronaut())


def test_load_image_reads_a_file(tmp_path: Path, astronaut: Image.Image) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(_encode(astronaut, "PNG"))
    np.testing.assert_array_equal(load_image(path), data.astronaut())


def _half_transparent_red() -> Image.Image:
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[:, :, 0] = 200  # red everywhere
    rgba[:, 8:, 3] = 255  # right half opaque, left half fully transparent
    return Image.fromarray(rgba, "RGBA")


def test_rgba_is_kept_with_keep_alpha() -> None:
    out = decode_image(_encode(_half_transparent_red(), "PNG"), keep_alpha=True)
    assert out.shape == (16, 16, 4)
    assert (out[:, :8, 3] == 0).all() and (out[:, 8:, 3] == 255).all()


def test_rgba_is_flattened_on_white_by_default() -> None:
    out = decode_image(_encode(_half_transparent_red(), "PNG"))
    assert out.shape == (16, 16, 3)
    assert (out[:, :8] == 255).all()  # transparent -> white
    assert (out[:, 8:] == (200, 0, 0)).all()  # opaque pixels unchanged


def test_keep_alpha_on_an_opaque_image_returns_rgb(astronaut: Image.Image) -> None:
    assert decode_image(_encode(astronaut, "PNG"), keep_alpha=True).shape == (512, 512, 3)


def test_greyscale_becomes_rgb_with_equal_channels() -> None:
    out = decode_image(_encode(Image.fromarray(data.camera()), "PNG"))
    assert out.shape == (512, 512, 3)
    np.testing.assert_array_equal(out[:, :, 0], data.camera())
    np.testing.assert_array_equal(out[:, :, 0], out[:, :, 2])


def test_palette_image_becomes_rgb(astronaut: Image.Image) -> None:
    pal = astronaut.resize((128, 128)).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    out = decode_image(_encode(pal, "PNG"))
    assert out.shape == (128, 128, 3)
    np.testing.assert_array_equal(out, np.asarray(pal.convert("RGB")))


def test_palette_gif_with_transparency_is_flattened_on_white() -> None:
    pal = Image.new("P", (16, 16), 1)
    pal.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    pal.paste(0, (0, 0, 8, 16))  # left half uses the transparent index
    out = decode_image(_encode(pal, "GIF", transparency=0))
    assert out.shape == (16, 16, 3)
    assert (out[:, :8] == 255).all()
    assert (out[:, 8:] == (0, 0, 255)).all()
    kept = decode_image(_encode(pal, "GIF", transparency=0), keep_alpha=True)
    assert kept.shape == (16, 16, 4) and (kept[:, :8, 3] == 0).all()


def test_content_hash_is_stable_and_content_sensitive() -> None:
    assert images.content_hash(b"abc") == images.content_hash(b"abc")
    assert images.content_hash(b"abc") != images.content_hash(b"abd")


@pytest.mark.parametrize(
    ("min_side", "expected"),
    [
        (None, (1200, 1600)),
        (512, (600, 800)),
        (300, (300, 400)),
        (100, (150, 200)),
        (1000, (1200, 1600)),
    ],
)
def test_large_jpegs_decode_at_a_reduced_scale_never_below_min_side(
    min_side: int | None, expected: tuple[int, int]
) -> None:
    photo = np.asarray(Image.fromarray(data.astronaut()).resize((1600, 1200)))
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, format="JPEG", quality=90)
    got = decode_image(buf.getvalue(), min_side=min_side)
    assert got.shape == (*expected, 3)
    # The same picture, only smaller: close to the full decode scaled down.
    full = np.asarray(Image.fromarray(photo).resize(expected[::-1], Image.Resampling.BOX))
    assert np.abs(got.astype(int) - full.astype(int)).mean() < 8


def test_min_side_leaves_other_formats_whole() -> None:
    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, format="PNG")
    assert decode_image(buf.getvalue(), min_side=64).shape == (512, 512, 3)


def test_noise_fails_the_gate_and_real_pictures_pass() -> None:
    from server.engine.project.config import ReviewConfig
    from server.engine.vision.quality import gate, pixel_correlation
    from tests.conftest import DEMO_QUERIES, DEMO_REFS

    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    assert pixel_correlation(noise) < 0.1 and gate(noise, ReviewConfig()) == "noise"
    for path in [*sorted(DEMO_QUERIES.glob("*.jpg")), *sorted(DEMO_REFS.glob("*.png"))]:
        picture = load_image(path)
        assert pixel_correlation(picture) > 0.8, path.name
    assert gate(noise, ReviewConfig(min_pixel_correlation=0)) is None  # off
