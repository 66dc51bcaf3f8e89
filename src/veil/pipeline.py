"""The pipeline: detect -> mask -> anonymize on one image (tracking joins for video)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from veil import __version__
from veil.anonymize.base import ANONYMIZERS, Anonymizer
from veil.config import RunConfig
from veil.detect.base import DETECTORS, Detector
from veil.detect.working import WORK_PIXELS, detect_bounded
from veil.errors import BackendError, VeilError
from veil.io.yuv import YUV420, even_box, merge_boxes
from veil.mask import Masker, Region
from veil.types import Faces, check_image

if TYPE_CHECKING:
    from veil.consent import ConsentList
    from veil.target import Target

__all__ = ["Pipeline", "Result"]


@dataclass(frozen=True)
class Result:
    """What one pass of the pipeline produced: ``faces`` were anonymized (in ``regions``),
    ``kept`` were left as they are by a consent list (with ``data["consent_distance"]``)."""

    image: np.ndarray
    faces: Faces
    regions: list[Region]
    kept: Faces = field(default_factory=Faces.empty)


class Pipeline:
    """Detector, masker and anonymizer, run in that order on each image.

    Any failure raises; the caller then writes nothing for that image (fail closed):
    the pipeline never returns an image whose faces were not processed.

    Detection works on a bounded resolution: an image over ``work_pixels`` pixels is
    analysed as a downscaled overview plus native tiles (:mod:`veil.detect.working`), so
    the detector's memory does not grow with the image.

    ``consent`` (a :class:`~veil.consent.ConsentList`) removes the faces it keeps from
    the detected ones before masking; without it every face is anonymized.
    """

    def __init__(
        self,
        detector: Detector,
        anonymizer: Anonymizer,
        masker: Masker | None = None,
        *,
        work_pixels: int = WORK_PIXELS,
        consent: ConsentList | None = None,
        target: Target | None = None,
    ) -> None:
        self.detector = detector
        self.anonymizer = anonymizer
        self.masker = masker or Masker()
        self.work_pixels = work_pixels
        self.consent = consent
        self.target = target  # None: the masker's shape around each face

    @classmethod
    def from_config(cls, config: RunConfig, *, detector: Detector | None = None) -> Pipeline:
        """Build every stage from a :class:`RunConfig` (``detector`` may be shared); with
        consent settings, the reference photos are loaded here (InputError on a bad one)."""
        det = detector or DETECTORS.create(config.detector.name, **config.detector.kwargs())
        a = config.anonymizer
        anon = ANONYMIZERS.create(a.method, strength=a.strength, seed=a.seed, **a.options)
        m = config.mask
        masker = Masker(
            shape=m.shape, scale=m.scale, feather=m.feather, drop=m.drop, margin=m.margin
        )
        pipeline = cls(det, anon, masker)
        if config.consent.active:
            from veil.consent import ConsentList

            pipeline.consent = ConsentList.from_config(config.consent, pipeline.detect)
        if config.target != "face":
            from veil.target import make_target

            pipeline.target = make_target(config.target)
            getattr(pipeline.target, "segmenter", None)  # load its models now: errors early
        return pipeline

    def detect(self, image: np.ndarray) -> Faces:
        return self._call(self._bounded(self.detector.detect), image)

    def detect_window(self, image: np.ndarray) -> Faces:
        """:meth:`Detector.detect_window` with the same error handling as :meth:`detect`."""
        return self._call(self.detector.detect_window, image)

    def detect_keyframe(self, image: np.ndarray) -> Faces:
        """:meth:`Detector.detect_keyframe` with the same error handling as :meth:`detect`."""
        return self._call(self._bounded(self.detector.detect_keyframe), image)

    def _bounded(self, method: Callable[[np.ndarray], Faces]) -> Callable[[np.ndarray], Faces]:
        def bounded(image: np.ndarray) -> Faces:
            overview = self.detector.detect_window
            return detect_bounded(
                method, image, overview_detect=overview, work_pixels=self.work_pixels
            )

        return bounded

    def _call(self, method: Callable[[np.ndarray], Faces], image: np.ndarray) -> Faces:
        check_image(image)
        try:
            return method(image)
        except VeilError:
            raise
        except Exception as exc:
            raise BackendError(f"detector {self.detector.name!r} failed: {exc}") from exc

    def anonymize(self, image: np.ndarray, faces: Faces) -> Result:
        """Anonymize ``faces`` (already detected or tracked) in ``image``."""
        regions = self._regions(lambda: image, faces, image.shape)
        try:
            out = self.anonymizer.apply(image, regions)
        except VeilError:
            raise
        except Exception as exc:
            raise BackendError(f"anonymizer {self.anonymizer.name!r} failed: {exc}") from exc
        return Result(out, faces, regions)

    def anonymize_yuv(self, frame: YUV420, faces: Faces) -> YUV420:
        """:meth:`anonymize` for a :class:`~veil.io.yuv.YUV420` frame, converting only
        the crops around faces to RGB and back (the frame itself when there are none).

        Each face's region plus the anonymizer's :meth:`~Anonymizer.context` margin is one
        area; overlapping areas are merged and each merged crop is anonymized on its own,
        so every face sees the same pixels as in a whole RGB frame.
        """
        regions = self._regions(frame.rgb, faces, frame.shape)
        if not regions:
            return frame
        h, w = frame.height, frame.width
        areas = []
        for r in regions:
            m = self.anonymizer.context(r.size)
            areas.append(even_box((r.x0 - m, r.y0 - m, r.x1 + m, r.y1 + m), w, h))
        groups = merge_boxes(areas)

        def crop(rgb: np.ndarray, index: int) -> tuple[np.ndarray, np.ndarray]:
            (x0, y0, _, _), members = groups[index]
            shifted = [regions[i].shifted(-x0, -y0) for i in members]
            touched = np.zeros(rgb.shape[:2], bool)  # the pixels apply() may blend
            for r in shifted:
                touched[r.slices] |= r.alpha > 0
            return self.anonymizer.apply(rgb, shifted), touched

        try:
            return frame.edit([box for box, _ in groups], crop)
        except VeilError:
            raise
        except Exception as exc:
            raise BackendError(f"anonymizer {self.anonymizer.name!r} failed: {exc}") from exc

    def _regions(
        self, image: Callable[[], np.ndarray], faces: Faces, shape: tuple[int, ...]
    ) -> list[Region]:
        """The masker's regions, or the target's (``--target head|person``): a person
        target reads the image (``image()``); its failures fail the image (closed)."""
        if self.target is None:
            return self.masker.regions(faces, shape)
        try:
            return self.target.regions(image, faces, self.masker, shape)
        except VeilError:
            raise
        except Exception as exc:
            raise BackendError(f"target {self.target.name!r} failed: {exc}") from exc

    def process(self, image: np.ndarray) -> Result:
        """Detect and anonymize every face in an RGB ``uint8 (H, W, 3)`` image (but those
        a consent list keeps, see :attr:`Result.kept`)."""
        faces = self.detect(image)
        if self.consent is None:
            return self.anonymize(image, faces)
        hidden, kept = self.consent.split(image, faces)
        return dataclasses.replace(self.anonymize(image, hidden), kept=kept)

    def describe(self) -> dict[str, Any]:
        """Settings for audit files."""
        m = self.masker
        out = {
            "veil_version": __version__,
            "detector": self.detector.describe(),
            "mask": {
                "shape": m.shape,
                "scale": m.scale,
                "feather": m.feather,
                "drop": m.drop,
                "margin": m.margin,
            },
            "anonymizer": self.anonymizer.describe(),
        } | ({"consent": self.consent.describe()} if self.consent is not None else {})
        return out | ({"target": self.target.name} if self.target is not None else {})
