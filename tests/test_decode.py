"""animefaces.decode on Danbooru's own decoding fixtures and on generated edge cases (16-bit, alpha, bombs)."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from animefaces import decode
from animefaces.decode import ImageRejected, load_rgb, read_bgr, sniff_format
from PIL import Image, ImageFile

REASONS = {decode.EMPTY_FILE, decode.UNDECODABLE, decode.TRUNCATED, decode.DECOMPRESSION_BOMB}


@pytest.fixture(scope="module")
def fixtures(shared):
    root = shared / "robustness" / "danbooru_test_files"
    if not root.is_dir():
        pytest.skip(f"{root} missing")
    return root


def test_every_fixture_decodes_or_is_rejected_with_a_reason(fixtures):
    files = sorted(p for p in fixtures.rglob("*") if p.is_file())
    assert len(files) == 59  # 58 images + webp/README.md
    rejected = {}
    for path in files:
        try:
            img = load_rgb(path)
        except ImageRejected as exc:
            assert exc.reason in REASONS, path
            rejected[path.relative_to(fixtures).as_posix()] = exc.reason
            with pytest.raises(ImageRejected) as again:  # the detection decoder agrees
                read_bgr(path)
            assert again.value.reason == exc.reason
            continue
        assert img.rgb.dtype == np.uint8 and img.rgb.ndim == 3 and img.rgb.shape[2] == 3, path
        assert img.rgb.flags["C_CONTIGUOUS"]
        bgr = read_bgr(path)
        assert bgr.shape == img.rgb.shape, path
    assert rejected == {
        "gif/corrupt-static.gif": "truncated",
        "gif/test-corrupt.gif": "truncated",
        "jpg/test-blank.jpg": "truncated",
        "jpg/test-corrupt.jpg": "truncated",
        "jpg/test-exif-small.jpg": "truncated",
        "png/empty.png": "empty_file",
        "png/test-corrupt.png": "undecodable",
        "webp/README.md": "undecodable",
        "webp/truncated.webp": "truncated",
    }


def test_exif_small_is_really_truncated(fixtures):
    """test-exif-small.jpg is a progressive JPEG cut at exactly 40,000 bytes: no end marker, and a lenient decode
    fills the lower part with the decoder's flat grey. So ``truncated`` is right, not a false positive."""
    path = fixtures / "jpg" / "test-exif-small.jpg"
    data = path.read_bytes()
    assert data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-2:]
    assert decode.looks_truncated(data)
    saved = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        with Image.open(path) as im:
            im.load()
            arr = np.asarray(im.convert("RGB"))
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved
    fill = (arr == 128).all(axis=2)
    assert fill[-10:].all()  # the bottom rows are pure decoder fill
    assert fill.mean() > 0.3
    with pytest.raises(ImageRejected) as exc:
        load_rgb(path)
    assert exc.value.reason == "truncated"


@pytest.mark.parametrize(
    "name,k_ccw,flip",
    [
        ("jpg/test-rotation-180.jpg", 2, False),
        ("jpg/test-rotation-90cw.jpg", -1, False),
        ("png/test-rotation-90cw.png", -1, False),
        ("jpg/test-rotation-270cw.jpg", 1, False),
        ("webp/Exif2.webp", 0, True),
        ("webp/Exif6.webp", -1, False),
    ],
)
def test_exif_orientation_applied(fixtures, name, k_ccw, flip):
    """The output equals the stored pixels transformed as the EXIF tag says (3: 180, 6: 90 CW, 8: 90 CCW,
    2: mirror), computed here with numpy from the raw decode."""
    path = fixtures / name
    with Image.open(path) as im:
        raw = np.asarray(im.convert("RGB"))
    want = np.fliplr(raw) if flip else np.rot90(raw, k=k_ccw)
    img = load_rgb(path)
    assert img.info["exif_transposed"] and img.info["exif_orientation"] != 1
    assert np.array_equal(img.rgb, want)


def test_exif_webps_come_out_upright_by_content(fixtures):
    """Exif2.webp and Exif6.webp are the same labelled picture stored mirrored / rotated: after decoding they
    match each other (content check), while the raw pixels of one do not match the other."""
    a = load_rgb(fixtures / "webp" / "Exif2.webp").rgb.astype(float).mean(axis=2)
    b = load_rgb(fixtures / "webp" / "Exif6.webp").rgb.astype(float).mean(axis=2)
    assert a.shape == b.shape
    corr = np.corrcoef(a.ravel(), b.ravel())[0, 1]
    with Image.open(fixtures / "webp" / "Exif2.webp") as im:
        raw = np.asarray(im.convert("L"), dtype=float)
    raw_corr = np.corrcoef(raw.ravel(), b.ravel())[0, 1]
    assert corr > 0.95 and raw_corr < 0.8, (corr, raw_corr)


def test_colour_management(fixtures):
    d = fixtures / "dupes"
    base = load_rgb(d / "countergirl-baseline.jpg")
    srgb = load_rgb(d / "countergirl-srgb.jpg")  # embedded sRGB profile: passed through unchanged
    assert srgb.info["icc"] == "srgb" and np.array_equal(srgb.rgb, base.rgb)
    grey_profile = load_rgb(d / "countergirl-rgb-gray.jpg")  # a GRAY profile on RGB pixels: ignored
    assert grey_profile.info["icc"] == "ignored" and np.array_equal(grey_profile.rgb, base.rgb)
    adobe = load_rgb(d / "countergirl-adobergb.jpg")  # the same stored pixels, tagged Adobe RGB: converted
    with Image.open(d / "countergirl-adobergb.jpg") as im:
        stored = np.asarray(im.convert("RGB"))
    assert np.array_equal(stored, base.rgb)
    assert adobe.info["icc"] == "converted" and not np.array_equal(adobe.rgb, base.rgb)
    # Adobe RGB has a wider gamut: interpreted correctly, saturated colours get *more* saturated in sRGB
    chroma = lambda a: (a.max(axis=2).astype(int) - a.min(axis=2)).mean()  # noqa: E731
    assert chroma(adobe.rgb) > chroma(base.rgb)
    weird = load_rgb(fixtures / "jpg" / "test-weird-profile.jpg")  # LittleCMS cannot use it: kept as is
    assert weird.info["icc"] == "error" and weird.rgb.shape == (192, 154, 3)
    grey_rgb = load_rgb(fixtures / "jpg" / "test-grey-rgb-profile.jpg")  # L pixels + RGB profile
    assert grey_rgb.mode == "L" and grey_rgb.info["icc"] == "srgb" and grey_rgb.rgb.shape == (577, 538, 3)


def test_cmyk_matches_opencv(fixtures):
    """Adobe CMYK JPEG without profile: Pillow's conversion agrees with libjpeg/OpenCV's (no inverted colours)."""
    path = fixtures / "jpg" / "test-cmyk-no-profile.jpg"
    img = load_rgb(path)
    assert img.mode == "CMYK" and img.info["cmyk"]
    ref = cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1]
    assert np.abs(img.rgb.astype(int) - ref).mean() < 8


def test_alpha_flattened_onto_background(fixtures):
    d = fixtures / "dupes"
    white = load_rgb(d / "countergirl.png")
    assert white.info["has_alpha"]
    with Image.open(d / "countergirl-whitebg-noalpha.png") as im:
        assert np.array_equal(white.rgb, np.asarray(im.convert("RGB")))
    black = load_rgb(d / "countergirl.png", background=(0, 0, 0))
    with Image.open(d / "countergirl.png") as im:
        alpha = np.asarray(im.convert("RGBA"))[:, :, 3]
    assert (black.rgb[alpha == 0] == 0).all() and (white.rgb[alpha == 0] == 255).all()


def test_sixteen_bit_and_wide_modes(tmp_path):
    ramp = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)
    p16 = tmp_path / "grey16.png"
    Image.fromarray(ramp).save(p16)  # I;16 PNG
    img = load_rgb(p16)
    assert img.info.get("bit_depth_reduced") and img.rgb.dtype == np.uint8
    assert np.abs(img.rgb[:, :, 0].astype(int) - (ramp.astype(int) * 255 // 65535)).max() <= 1
    rgb16 = np.stack([ramp, ramp[::-1], np.full_like(ramp, 40000)], axis=2)
    p48 = tmp_path / "rgb48.png"
    assert cv2.imwrite(str(p48), rgb16[:, :, ::-1])  # 16-bit per channel RGB PNG
    out = load_rgb(p48).rgb
    assert out.dtype == np.uint8 and np.abs(out[:, :, 2].astype(int) - 40000 // 257).max() <= 1


def test_decompression_bomb_is_rejected_not_raised(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("RGB", (300, 200), (10, 200, 30)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50_000)  # 60,000 px: between 1x and 2x the limit
    for fn in (load_rgb, read_bgr):
        with pytest.raises(ImageRejected) as exc:
            fn(path)
        assert exc.value.reason == "decompression_bomb"
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20_000)  # over 2x: Pillow itself refuses to open it
    with pytest.raises(ImageRejected) as exc:
        load_rgb(path)
    assert exc.value.reason == "decompression_bomb"


def test_trailing_bytes_after_jpeg_end_are_not_truncation(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 60)).save(buf, "JPEG", quality=90)
    good = tmp_path / "trailer.jpg"
    good.write_bytes(buf.getvalue() + b"APPENDED-DATA" * 4)
    assert decode.looks_truncated(good.read_bytes())  # the cheap check is suspicious ...
    assert read_bgr(good).shape == (30, 40, 3)  # ... but the full decode shows the image is complete
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    for fn in (load_rgb, read_bgr):
        with pytest.raises(ImageRejected) as exc:
            fn(cut)
        assert exc.value.reason == "truncated"


def test_sniff_format(fixtures):
    assert sniff_format((fixtures / "png" / "jpg.png").read_bytes()[:64]) == ("JPEG", False)
    assert sniff_format((fixtures / "webp" / "2_webp_ll.webp").read_bytes()[:4096]) == ("WEBP", True)
    assert sniff_format((fixtures / "webp" / "2_webp_a.webp").read_bytes()[:4096]) == ("WEBP", False)
    assert sniff_format(b"not an image") == (None, False)
    assert load_rgb(fixtures / "webp" / "2_webp_ll.webp").lossless
    assert not load_rgb(fixtures / "png" / "jpg.png").lossless  # JPEG data named .png
