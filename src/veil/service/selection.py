"""Who and where the service anonymizes: keep / only reference photos uploaded with the
request (multipart fields ``keep`` and ``only``, one or several files each) and regions
(form fields ``region`` and ``exclude_region``: boxes ``x1,y1,x2,y2``, repeatable;
``regions``: the JSON of a regions file with polygons).

Reference photos are uploads like any other: they count toward the request's body limit
(the guard's), are stored under generated names in the private work folder, sniffed by
content (pixel and memory limits from the header), read, embedded and deleted before
the request's image or job is processed. A photo that is not an image, or does not show
exactly one reliable face, is a 4xx naming the photo by its upload name. Photos whose
names differ only by a trailing number are one person (:func:`person_of`). The cached
pipeline is never changed: a request with a selection runs on a shallow copy carrying
its own consent list and region filter.
"""

from __future__ import annotations

import contextlib
import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import File, Form, UploadFile

from veil.config import ConsentConfig, RegionConfig, RunConfig
from veil.errors import ConfigError
from veil.pipeline import Pipeline
from veil.service.intake import ApiError, sniff_image, store, veil_call
from veil.service.settings import ServiceSettings

__all__ = ["Selection", "selection_dependency"]

_NAME_CHARS = 80


@dataclass
class Selection:
    """The request's choice: reference uploads, consent thresholds and regions."""

    keep: list[UploadFile] = field(default_factory=list)
    only: list[UploadFile] = field(default_factory=list)
    consent: ConsentConfig = field(default_factory=ConsentConfig)
    regions: RegionConfig = field(default_factory=RegionConfig)

    @property
    def active(self) -> bool:
        return bool(self.keep or self.only or self.regions.active)

    @contextlib.contextmanager
    def stored(self, root: Path, settings: ServiceSettings) -> Iterator[StoredSelection]:
        """The reference uploads copied into ``root`` and sniffed (415 naming a photo
        that is not an image, 413 over the limits); every copy deleted afterwards."""
        refs = self.keep or self.only
        if len(refs) > settings.max_batch_files:
            limit = settings.max_batch_files
            raise ApiError(422, "too_many_files", f"send at most {limit} reference photos")
        paths: list[tuple[str, Path]] = []
        try:
            for upload in refs:
                name = _display_name(upload.filename, len(paths))
                path = store(upload.file, root, settings.max_image_bytes)
                paths.append((name, path))
                if sniff_image(path, settings) is None:
                    raise ApiError(
                        415, "unsupported_media_type", f"reference photo {name!r} is not an image"
                    )
            yield StoredSelection(self, paths, settings.max_pixels)
        finally:
            for _, path in paths:
                path.unlink(missing_ok=True)


@dataclass
class StoredSelection:
    """A :class:`Selection` whose reference photos are stored files."""

    selection: Selection
    photos: list[tuple[str, Path]]
    max_pixels: int

    def apply(self, pipeline: Pipeline) -> Pipeline:
        """``pipeline`` itself when nothing is chosen, else a copy with this request's
        consent list and regions (4xx naming a reference photo that fails). Runs the
        detector: call it on a synchronous worker thread."""
        sel = self.selection
        if not sel.active:
            return pipeline
        chosen = copy.copy(pipeline)
        if sel.regions.active:
            from veil.regions import RegionFilter

            chosen.regions = RegionFilter(sel.regions)
        if self.photos:
            chosen.consent = veil_call(self._consent, pipeline)
        return chosen

    def _consent(self, pipeline: Pipeline) -> Any:
        from veil.consent import ConsentList, reference_embedding
        from veil.evaluate.identity import FaceEmbedder
        from veil.io.images import read_image

        config = self.selection.consent
        embedder = FaceEmbedder()
        people, vectors = [], []
        for name, path in self.photos:
            image = read_image(path, max_pixels=self.max_pixels).image
            path.unlink(missing_ok=True)
            faces = pipeline.detect(image)
            vectors.append(reference_embedding(embedder, image, faces, config, Path(name)))
            people.append(person_of(name))
        mode = "keep" if config.keep else "only"
        refs = np.asarray(vectors, np.float32).reshape(-1, 128)
        return ConsentList(mode, people, refs, config, embedder)


def person_of(name: str) -> str:
    """The person an uploaded reference photo shows, from its name: the stem without a
    trailing number, so ``ada.jpg``, ``ada-2.jpg`` and ``ada_3.png`` are one person (whose
    photos never count as someone else against each other) and ``bob.jpg`` another."""
    stem = Path(name).stem
    return re.sub(r"[-_ .]*\d+$", "", stem) or stem


def _display_name(filename: str | None, index: int) -> str:
    """The upload's own name (for messages and audit labels; never a path on the server),
    or ``photo N``."""
    name = Path(filename or "").name[:_NAME_CHARS]
    return name or f"photo {index + 1}"


def selection_dependency(defaults: RunConfig) -> Any:
    """A FastAPI dependency reading the selection's form fields into a :class:`Selection`;
    422 for a malformed box, polygon file, threshold, or ``keep`` together with ``only``."""
    c = defaults.consent

    def selection(
        keep: Annotated[list[UploadFile] | None, File()] = None,
        only: Annotated[list[UploadFile] | None, File()] = None,
        keep_threshold: Annotated[float, Form(gt=0, le=1)] = c.keep_threshold,
        only_threshold: Annotated[float, Form(gt=0, le=1)] = c.only_threshold,
        region: Annotated[list[str] | None, Form()] = None,
        exclude_region: Annotated[list[str] | None, Form()] = None,
        regions: Annotated[str | None, Form()] = None,
    ) -> Selection:
        from veil.regions import parse_box, parse_regions

        keep, only = _files(keep), _files(only)
        try:
            consent = ConsentConfig(
                keep=tuple(f"keep {i}" for i in range(len(keep))),
                only=tuple(f"only {i}" for i in range(len(only))),
                keep_threshold=keep_threshold,
                only_threshold=only_threshold,
            )
            include = [parse_box(b) for b in region or [] if b.strip()]
            exclude = [parse_box(b) for b in exclude_region or [] if b.strip()]
            if regions and regions.strip():
                more_include, more_exclude = parse_regions(regions)
                include, exclude = include + more_include, exclude + more_exclude
            config = RegionConfig(include=tuple(include), exclude=tuple(exclude))
        except ConfigError as exc:
            raise ApiError(422, "invalid_option", str(exc)) from exc
        return Selection(keep, only, consent, config)

    return selection


def _files(uploads: list[UploadFile] | None) -> list[UploadFile]:
    """The uploads, without the empty unnamed part a form sends for an empty file input."""
    return [f for f in uploads or [] if f.filename or (f.size or 0) > 0]
