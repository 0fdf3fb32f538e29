"""Anime face detectors behind one interface: ``Detector.detect(bgr) -> list[Face]``.

- ``lbpcascade`` (default, the seed's): grey -> ``cv2.equalizeHist`` -> ``detectMultiScale(scaleFactor,
  minNeighbors, minSize)`` with nagadomi's LBP cascade. The boxes are exactly those of the plain OpenCV call
  (``tests/test_detect.py`` proves it on real illustrations); only the score comes from ``detectMultiScale3``
  (last stage weight) or ``detectMultiScale2`` (neighbour count), which run the same candidate search and the
  same grouping.
- ``nvxs``: the ``animeface`` package (libnvxs), likelihood as score.

Faces come back in a deterministic order (:func:`order_faces`): score descending, then top-to-bottom,
left-to-right. OpenCV collects raw candidates from several threads, so the order of its own output can vary
between runs; the set of boxes does not.

A ``cv2.CascadeClassifier`` keeps per-call scratch state and is not safe to share between threads: build one
detector per worker thread (:func:`make_detector` is cheap, ~10 ms).

Adding a detector (registry :data:`DETECTORS`): a class with ``name``, ``detect`` and ``describe``, a ``build(params,
cascade_path)`` function, and one :func:`register_detector` call naming how the crop stage parallelises it
(``threads`` when it releases the GIL, ``processes`` when it does not); then its name in the schema's
``crop.detector`` enum and its keys in the ``crop`` block.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Literal, Protocol

import numpy as np


@dataclass(frozen=True)
class Face:
    """A detected face box in image pixels (x, y = top-left corner) and the detector's score (None if none)."""

    x: int
    y: int
    w: int
    h: int
    score: float | None = None

    def box(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.w, self.h)

    def as_dict(self) -> dict:
        return asdict(self)


class Detector(Protocol):
    name: str

    def detect(self, bgr: np.ndarray) -> list[Face]: ...

    def describe(self) -> dict: ...


def order_faces(faces: Iterable[Face]) -> list[Face]:
    """Score descending (None last), then y, then x, then size: the order faces are numbered in."""
    return sorted(faces, key=lambda f: (f.score is None, -(f.score or 0.0), f.y, f.x, f.w, f.h))


def equalised_grey(bgr: np.ndarray) -> np.ndarray:
    """The seed's detector input: grey (BGR weights) with a global histogram equalisation."""
    import cv2

    grey = bgr if bgr.ndim == 2 else cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    return cv2.equalizeHist(grey)


class CascadeDetector:
    """nagadomi's LBP cascade; the schema's crop defaults are the seed's (1.1, 5, 50x50)."""

    name = "lbpcascade"

    def __init__(
        self,
        cascade_path: str | os.PathLike[str],
        scale_factor: float,
        min_neighbors: int,
        min_face: int,
        score: str,
    ) -> None:
        import cv2

        if score not in ("level_weight", "neighbours"):
            raise ValueError(f"crop.cascade_score must be 'level_weight' or 'neighbours', got {score!r}")
        path = os.fspath(cascade_path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"cascade file {path} not found (run `animefaces fetch-cascade` or the workflow)")
        try:
            self._cascade = cv2.CascadeClassifier(path)
            broken = self._cascade.empty()
        except (cv2.error, SystemError):  # OpenCV raises on some malformed XML instead of returning empty
            broken = True
        if broken:
            raise ValueError(f"cascade file {path} could not be loaded by OpenCV (corrupt or not a cascade XML)")
        self.cascade_path = path
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.min_face = int(min_face)
        self.score = score

    def describe(self) -> dict:
        return {
            "detector": self.name,
            "scale_factor": self.scale_factor,
            "min_neighbors": self.min_neighbors,
            "min_face": self.min_face,
            "score": self.score,
        }

    def detect_grey(self, grey: np.ndarray) -> list[Face]:
        """Detect on an already equalised grey image (what the seed feeds the cascade)."""
        kw = dict(scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(self.min_face,) * 2)
        if self.score == "level_weight":
            boxes, _levels, weights = self._cascade.detectMultiScale3(grey, outputRejectLevels=True, **kw)
        else:
            boxes, weights = self._cascade.detectMultiScale2(grey, **kw)
        weights = np.asarray(weights, dtype=np.float64).reshape(-1)
        faces = [
            Face(int(x), int(y), int(w), int(h), round(float(s), 6))
            for (x, y, w, h), s in zip(np.asarray(boxes).reshape(-1, 4), weights, strict=True)
        ]
        return order_faces(faces)

    def detect(self, bgr: np.ndarray) -> list[Face]:
        return self.detect_grey(equalised_grey(bgr))


class NvxsDetector:
    """The ``animeface`` package (libnvxs); ``threshold`` drops faces with a lower likelihood."""

    name = "nvxs"

    def __init__(self, threshold: float = 0.5) -> None:
        import animeface  # noqa: F401  (fail early with a clear ImportError)

        self.threshold = float(threshold)

    def describe(self) -> dict:
        return {"detector": self.name, "threshold": self.threshold}

    def detect(self, bgr: np.ndarray) -> list[Face]:
        import animeface
        from PIL import Image

        rgb = np.ascontiguousarray(bgr[:, :, ::-1]) if bgr.ndim == 3 else bgr
        faces = []
        for f in animeface.detect(Image.fromarray(rgb)):
            if f.likelihood < self.threshold:
                continue
            b = f.face.pos
            faces.append(Face(int(b.x), int(b.y), int(b.width), int(b.height), round(float(f.likelihood), 6)))
        return order_faces(faces)


Parallelism = Literal["threads", "processes"]


@dataclass(frozen=True)
class DetectorKind:
    """A registered detector: how to build one from the crop config section, and how the crop stage runs it in
    parallel (``threads``: detection releases the GIL; ``processes``: it does not, one detector per process)."""

    name: str
    build: Callable[[dict, str | None], Detector]
    parallelism: Parallelism = "threads"


DETECTORS: dict[str, DetectorKind] = {}


def register_detector(name: str, build: Callable[[dict, str | None], Detector], parallelism: Parallelism = "threads"):
    """Make ``crop.detector: <name>`` build detectors with ``build(params, cascade_path)``."""
    if parallelism not in ("threads", "processes"):
        raise ValueError(f"detector {name!r}: parallelism must be 'threads' or 'processes', got {parallelism!r}")
    DETECTORS[name] = DetectorKind(name, build, parallelism)
    return DETECTORS[name]


def detector_kind(params: dict) -> DetectorKind:
    """The registered detector that the crop config section (``crop.detector``) names."""
    name = params["detector"]
    try:
        return DETECTORS[name]
    except KeyError:
        raise ValueError(
            f"config key crop.detector: unknown detector {name!r}; choose from {list(DETECTORS)}"
        ) from None


def _build_cascade(params: dict, cascade_path: str | None) -> CascadeDetector:
    if cascade_path is None:
        raise ValueError("the lbpcascade detector needs the cascade file (--cascade)")
    return CascadeDetector(
        cascade_path, params["scale_factor"], params["min_neighbors"], params["min_face"], params["cascade_score"]
    )


def _build_nvxs(params: dict, cascade_path: str | None) -> NvxsDetector:
    return NvxsDetector(threshold=params["nvxs_threshold"])


register_detector("lbpcascade", _build_cascade, "threads")  # OpenCV releases the GIL while detecting
register_detector("nvxs", _build_nvxs, "processes")  # libnvxs holds the GIL


def make_detector(params: dict, cascade_path: str | os.PathLike[str] | None = None) -> Detector:
    """A detector from the crop config section (keys the schema gives defaults for may be left out)."""
    from .config import fill_defaults

    params = fill_defaults(params, "crop")
    return detector_kind(params).build(params, None if cascade_path is None else os.fspath(cascade_path))
