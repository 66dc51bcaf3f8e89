"""The pipeline: detect -> mask -> anonymize on one image (tracking joins for video)."""

from __future__ import annotations

import dataclasses
import threading
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
from veil.mask import PERSON_KEY, Masker, Region
from veil.types import Faces, check_image

if TYPE_CHECKING:
    from veil.consent import ConsentList
    from veil.edits import Box, EditList
    from veil.regions import RegionFilter
    from veil.target import Target

__all__ = ["Pipeline", "Result"]

_METHODS_LOCK = threading.Lock()


@dataclass(frozen=True)
class Result:
    """What one pass of the pipeline produced: ``faces`` were anonymized (in ``regions``),
    ``kept`` were left as they are by a consent list (with ``data["consent_distance"]``),
    ``skipped`` by regions (with ``data["region"]``)."""

    image: np.ndarray
    faces: Faces
    regions: list[Region]
    kept: Faces = field(default_factory=Faces.empty)
    skipped: Faces = field(default_factory=Faces.empty)
    # an edit list (veil.edits): detections it left as they are, and (entry, box) changes
    removed: Faces = field(default_factory=Faces.empty)
    edit_changes: list[tuple[str, Box]] = field(default_factory=list)


class Pipeline:
    """Detector, masker and anonymizer, run in that order on each image.

    Any failure raises; the caller then writes nothing for that image (fail closed):
    the pipeline never returns an image whose faces were not processed.

    Detection works on a bounded resolution: an image over ``work_pixels`` pixels is
    analysed as a downscaled overview plus native tiles (:mod:`veil.detect.working`), so
    the detector's memory does not grow with the image.

    ``consent`` (a :class:`~veil.consent.ConsentList`) removes the faces it keeps from
    the detected ones before masking; without it every face is anonymized. ``regions``
    (a :class:`~veil.regions.RegionFilter`) first leaves visible the faces outside the
    include regions or inside the exclude ones.
    """

    def __init__(
        self,
        detector: Detector,
        anonymizer: Anonymizer,
        masker: Masker | None = None,
        *,
        work_pixels: int = WORK_PIXELS,
        consent: ConsentList | None = None,
        regions: RegionFilter | None = None,
        target: Target | None = None,
    ) -> None:
        self.detector = detector
        self.anonymizer = anonymizer
        self.masker = masker or Masker()
        self.work_pixels = work_pixels
        self.consent = consent
        self.regions = regions
        self._method_anonymizers: dict[str, Anonymizer] = {}  # anonymizer_for
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
        if config.regions.active:
            from veil.regions import RegionFilter

            pipeline.regions = RegionFilter(config.regions)
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
            out = self._apply(image, regions, faces)
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
            m = self._method_of(r, faces).context(r.size)
            areas.append(even_box((r.x0 - m, r.y0 - m, r.x1 + m, r.y1 + m), w, h))
        groups = merge_boxes(areas)

        def crop(rgb: np.ndarray, index: int) -> tuple[np.ndarray, np.ndarray]:
            (x0, y0, _, _), members = groups[index]
            shifted = [regions[i].shifted(-x0, -y0) for i in members]
            touched = np.zeros(rgb.shape[:2], bool)  # the pixels apply() may blend
            for r in shifted:
                touched[r.slices] |= r.alpha > 0
            return self._apply(rgb, shifted, faces), touched

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

    def process(self, image: np.ndarray, *, edits: EditList | None = None) -> Result:
        """Detect and anonymize every face in an RGB ``uint8 (H, W, 3)`` image (but those
        a consent list keeps, see :attr:`Result.kept`, or regions leave visible,
        :attr:`Result.skipped`). ``edits`` (frame 0 of an edit list, :mod:`veil.edits`) then
        removes, adds and re-methods faces."""
        faces, skipped = self.apply_regions(self.detect(image), image.shape[:2])
        kept = Faces.empty()
        if self.consent is not None:
            faces, kept = self.consent.split(image, faces)
        if edits is None:
            return dataclasses.replace(self.anonymize(image, faces), kept=kept, skipped=skipped)
        done = edits.apply(0, faces, shape=(image.shape[0], image.shape[1]))
        return dataclasses.replace(
            self.anonymize(image, done.faces),
            kept=kept,
            skipped=skipped,
            removed=done.removed,
            edit_changes=done.changes,
        )

    def apply_regions(self, faces: Faces, shape: tuple[int, int]) -> tuple[Faces, Faces]:
        """``(to anonymize, left visible by regions)`` of ``faces`` in a frame of ``shape
        (H, W)``; every face is anonymized when no region is set."""
        if self.regions is None:
            return faces, Faces.empty()
        return self.regions.split(faces, shape)

    # -- per-face methods (an edit list's "method"): faces.data["method"], None = the run's

    def _apply(self, image: np.ndarray, regions: list[Region], faces: Faces) -> np.ndarray:
        """The anonymizer's ``apply``, with each face's ``data["method"]`` when set: the
        regions of each method in turn, in order of first appearance."""
        methods = faces.data.get("method")
        if not methods or not any(methods):
            return self.anonymizer.apply(image, regions)
        out = image
        for name in dict.fromkeys(_method_name(r, methods) for r in regions):
            group = [r for r in regions if _method_name(r, methods) == name]
            out = self.anonymizer_for(name).apply(out, group)
        return out

    def _method_of(self, region: Region, faces: Faces) -> Anonymizer:
        methods = faces.data.get("method")
        return self.anonymizer_for(_method_name(region, methods) if methods else None)

    def anonymizer_for(self, method: str | None) -> Anonymizer:
        """The run's anonymizer (``method`` ``None`` or its own name), else one of
        ``method`` with the run's strength and seed, created on first use."""
        if method is None or method == self.anonymizer.name:
            return self.anonymizer
        with _METHODS_LOCK:
            cache = self._method_anonymizers
            if method not in cache:
                a = self.anonymizer
                cache[method] = ANONYMIZERS.create(method, strength=a.strength, seed=a.seed)
            return cache[method]

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
        if self.regions is not None:
            out["regions"] = self.regions.describe()
        return out | ({"target": self.target.name} if self.target is not None else {})


def _method_name(region: Region, methods: Any) -> str | None:
    """A face region's own method (an edit list's ``methods``); a person region
    (``--target person``: ``index`` is a row of the people found, not of the faces) takes
    the run's."""
    return None if region.key >= PERSON_KEY else methods[region.index]
