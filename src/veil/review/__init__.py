"""Review before release (``veil review``): a video's or a folder's analysis, flags,
proxy frames, the edit list and re-renders, for the review page
(:mod:`veil.service.review`). Importable without the ``serve`` extra.

Modules: :mod:`~veil.review.session` (:class:`VideoReview`), :mod:`~veil.review.photos`
(:class:`PhotoReview`), :mod:`~veil.review.proxy` (proxy video, thumbnails, cuts),
:mod:`~veil.review.flags` (frames worth a look), :mod:`~veil.review.render` (the
background render job), :mod:`~veil.review.rerender` (the edit list's re-render API).
"""

from veil.review.photos import PhotoReview
from veil.review.session import VideoReview, default_edits_path

__all__ = ["PhotoReview", "VideoReview", "default_edits_path"]
