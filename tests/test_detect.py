"""Detectors on real illustrations and face crops from ../shared/data."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from animefaces.detect import Face, NvxsDetector, make_detector, order_faces

SEED = dict(scaleFactor=1.1, minNeighbors=5, minSize=(50, 50))


@pytest.fixture(scope="module")
def cascade_path(shared):
    return shared / "cascade" / "lbpcascade_animeface.xml"


def _plain_boxes(cascade: cv2.CascadeClassifier, bgr: np.ndarray) -> list[tuple[int, int, int, int]]:
    grey = cv2.equalizeHist(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    return sorted(tuple(int(v) for v in b) for b in cascade.detectMultiScale(grey, **SEED))


@pytest.fixture(scope="module")
def samples(shared, cascade_path):
    """(name, image, plain OpenCV boxes) for the 10 detection samples, computed once."""
    plain = cv2.CascadeClassifier(str(cascade_path))
    out = []
    for f in sorted((shared / "illustrations" / "jonathonyan_detection_samples").iterdir()):
        bgr = cv2.imread(str(f))
        out.append((f.name, bgr, _plain_boxes(plain, bgr)))
    return out


@pytest.mark.parametrize("score", ["level_weight", "neighbours"])
def test_cascade_boxes_equal_plain_opencv_call(samples, cascade_path, score):
    """Seed parameters: exactly the boxes of cv2.CascadeClassifier(xml).detectMultiScale on the equalised grey
    image, 18 faces in 9 of the 10 jonathonyan samples."""
    ours = make_detector({"cascade_score": score}, cascade_path)  # the schema's crop defaults otherwise
    assert (ours.scale_factor, ours.min_neighbors, ours.min_face) == (1.1, 5, 50)
    per_image = {}
    for name, bgr, plain_boxes in samples:
        faces = ours.detect(bgr)
        assert sorted(face.box() for face in faces) == plain_boxes, name
        assert all(face.score is not None and face.score > 0 for face in faces)
        if score == "neighbours":
            assert all(face.score == int(face.score) and face.score > 5 for face in faces)
        per_image[name] = len(faces)
    assert sum(per_image.values()) == 18
    assert sum(1 for n in per_image.values() if n) == 9
    assert per_image["detect_04.jpg"] == 6 and per_image["detect_02.jpg"] == 0


def test_cascade_finds_nothing_on_hard_cases(shared, cascade_path):
    plain = cv2.CascadeClassifier(str(cascade_path))
    ours = make_detector({}, cascade_path)
    hard = sorted((shared / "illustrations" / "anime2sketch_test_samples").iterdir())
    hard += [
        shared / "illustrations" / "danbooru_utility_img" / n
        for n in ("rin_archer1.jpg", "rin_archer2.jpg", "rin_archer3.png")
    ]
    for f in hard:
        bgr = cv2.imread(str(f))
        assert ours.detect(bgr) == [] and _plain_boxes(plain, bgr) == [], f.name


def test_cascade_min_face_and_order(samples, cascade_path):
    bgr = next(img for name, img, _ in samples if name == "detect_04.jpg")
    faces = make_detector({}, cascade_path).detect(bgr)
    assert faces == order_faces(faces)
    scores = [f.score for f in faces]
    assert scores == sorted(scores, reverse=True)
    big = make_detector({"min_face": 150}, cascade_path).detect(bgr)
    assert 0 < len(big) < len(faces)
    assert all(f.w >= 150 for f in big)


def test_cascade_finds_loose_face_crops(shared, cascade_path):
    det = make_detector({}, cascade_path)
    files = sorted((shared / "faces" / "selfie2anime").iterdir())[:15]
    found = sum(1 for f in files if det.detect(cv2.imread(str(f))))
    assert found >= 13


def test_order_faces_is_score_then_position():
    faces = [Face(50, 10, 60, 60, 2.0), Face(5, 40, 60, 60, 3.0), Face(5, 10, 60, 60, 2.0), Face(0, 0, 9, 9, None)]
    assert order_faces(faces) == [faces[1], faces[2], faces[0], faces[3]]


def test_nvxs_finds_most_loose_crops(shared):
    det = NvxsDetector()
    files = sorted((shared / "faces" / "selfie2anime").iterdir())[:12]
    results = [det.detect(cv2.imread(str(f))) for f in files]
    assert sum(1 for r in results if r) >= 10
    for r in results:
        for face in r:
            assert 0.5 <= face.score <= 1.0
            assert face.w > 40 and face.x >= 0 and face.y >= 0


def test_nvxs_on_tight_getchu_crops_needs_context(shared):
    """64 px getchu faces: nvxs needs them larger and with some context around the face."""
    det = NvxsDetector()
    files = sorted((shared / "faces" / "getchu").iterdir())[:15]
    plain = contextual = 0
    for f in files:
        bgr = cv2.imread(str(f))
        plain += bool(det.detect(bgr))
        big = cv2.copyMakeBorder(
            cv2.resize(bgr, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC), 32, 32, 32, 32, cv2.BORDER_REPLICATE
        )
        contextual += bool(det.detect(big))
    assert contextual >= 13
    assert plain < contextual


def test_nvxs_on_illustration_and_threshold(shared):
    bgr = cv2.imread(str(shared / "illustrations" / "jonathonyan_detection_samples" / "detect_03.jpg"))
    faces = NvxsDetector(threshold=0.0).detect(bgr)
    assert faces and faces == order_faces(faces)
    top = faces[0]
    # the cascade's face on this image (69, 41, 84, 84) overlaps nvxs's best face
    assert top.x < 69 + 84 and top.x + top.w > 69 and top.y < 41 + 84 and top.y + top.h > 41
    assert NvxsDetector(threshold=1.0).detect(bgr) == [f for f in faces if f.score >= 1.0]


def test_make_detector_errors(tmp_path):
    with pytest.raises(ValueError, match="crop.detector"):
        make_detector({"detector": "yolo"}, None)
    with pytest.raises(FileNotFoundError, match="fetch-cascade"):
        make_detector({"detector": "lbpcascade"}, tmp_path / "missing.xml")
    junk = tmp_path / "junk.xml"
    junk.write_text("<opencv_storage></opencv_storage>")
    with pytest.raises(ValueError, match="could not be loaded"):
        make_detector({"detector": "lbpcascade"}, junk)
    assert make_detector({"detector": "nvxs", "nvxs_threshold": 0.7}).describe() == {
        "detector": "nvxs",
        "threshold": 0.7,
    }
