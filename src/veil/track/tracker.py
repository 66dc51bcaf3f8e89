"""Face tracking across video frames: one call per frame, ``Tracker.update(faces) -> faces``.

Each track is a constant-velocity Kalman filter on the box state ``(cx, cy, w, h)``
(numpy only). Detections are assigned to tracks with the Hungarian algorithm
(:func:`veil.track.assignment.linear_sum_assignment`) on the cost ``1 - IoU``; a pair whose IoU
is below ``iou_threshold`` may still match when their centres are within ``max_distance``
face sizes and their sizes within a factor 2 (cost ``1 + distance``, so IoU matches win).
That fallback keeps small, fast faces associated when their boxes no longer overlap.

Recall comes first (fail closed): every detection is in the output, a lost track keeps
being masked for ``max_age`` frames at its predicted box, and that box never shrinks
and grows by ``grow_when_lost`` per lost frame (uncertainty grows).

What keeps a crowd from ballooning: a full detection pass that does not find a track is
evidence the face is gone, so its box grows one frame more, then no longer, and the track
is masked for ``miss_grace`` more frames only and ends, instead of coasting and growing
for ``max_age`` (a face missed on one key frame stays covered while a window search looks
for it, and is kept when that finds it). An ended track stays dormant for ``remember``
frames: a detection at its predicted place gives it back its id. A lost track whose
predicted box overlaps another track's detection is a duplicate of that face and merges
into it (the older id lives on); two lost tracks on one spot merge too. New tracks start
with the crowd's common motion (a panning camera moves every face alike).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import cv2
import numpy as np

from veil.boxes import box_iou
from veil.errors import ConfigError
from veil.track.assignment import linear_sum_assignment
from veil.types import Faces

__all__ = ["SpeedMode", "Tracker", "scene_cut", "should_detect"]

_Q_POS, _Q_VEL = 1 / 100, 1 / 200  # process noise std, fraction of face size per frame
_R_BASE = 1 / 20  # measurement noise std (fraction of size) at smoothing=0.5
_R_MIN_PX = 1.0  # and at least this many px (smoothing > 0): small faces' boxes jitter
_R_NONE = 1e-3  # the measurement noise of smoothing=0 (detections passed through)
_MAX_GROWTH = 2.0  # cap on the growth of a lost track's box
_SCORE_DECAY = 0.9  # score of a predicted box: last score * decay ** frames lost
_NO_MATCH = 1e6

_F = np.eye(8)
_F[range(4), range(4, 8)] = 1.0
_H = np.eye(4, 8)


def _to_state(xyxy: np.ndarray) -> np.ndarray:
    """``xyxy (4,)`` -> ``(cx, cy, w, h)``."""
    x0, y0, x1, y1 = np.asarray(xyxy, np.float64)
    return np.array([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0])


def _size(z: np.ndarray) -> float:
    """Face size of a state ``(cx, cy, w, h, ...)``: mean of width and height, at least 1."""
    return max(float(z[2] + z[3]) / 2, 1.0)


def _to_xyxy(z: np.ndarray) -> np.ndarray:
    """``(cx, cy, w, h)`` -> ``xyxy (4,)``, width and height floored at 0."""
    cx, cy, w, h = z[0], z[1], max(z[2], 0.0), max(z[3], 0.0)
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


@dataclass
class _Track:
    """One face over time: Kalman state ``x (8,)``, covariance ``P (8, 8)`` and counters."""

    track_id: int
    x: np.ndarray
    P: np.ndarray
    score: float
    last_wh: np.ndarray  # (w, h) of the last matched detection
    landmarks: np.ndarray | None
    hits: int = 1
    lost: int = 0  # frames since the last matched detection
    missed: bool = False  # the last detector pass did not find it
    recheck: bool = False  # a full pass missed it and no window search has looked since
    grace: int | None = None  # frames left after a full pass missed it (None: not missed)
    ended: int | None = None  # lost frames at which its box stopped growing

    def predict(self) -> None:
        q = np.array([_Q_POS] * 4 + [_Q_VEL] * 4) * _size(self.x)
        self.x = _F @ self.x
        self.P = _F @ self.P @ _F.T + np.diag(q**2)
        self.lost += 1
        if self.grace is not None:
            self.grace -= 1

    def observe(self, z: np.ndarray, r: float, score: float, lm: np.ndarray | None) -> None:
        """Kalman correction with the matched detection ``z = (cx, cy, w, h)``."""
        noise = r * _size(z) if r <= _R_NONE else max(r * _size(z), _R_MIN_PX)
        S = _H @ self.P @ _H.T + np.eye(4) * noise**2
        K = np.linalg.solve(S, _H @ self.P).T
        self.x = self.x + K @ (z - _H @ self.x)
        self.P = (np.eye(8) - K @ _H) @ self.P
        self.score, self.last_wh, self.landmarks = score, z[2:].copy(), lm
        self.hits, self.lost = self.hits + 1, 0
        self.grace = None

    def full_pass_missed(self, grace: int) -> None:
        """A full detection pass did not find this lost track: it has ``grace`` more
        frames unless a detection matches it again (a second miss does not extend it).
        Its box grows one frame more (the face may be moving out of it) and then no
        longer: a growing box drifting over a crowd takes its neighbours' faces."""
        if self.grace is None:
            self.grace, self.ended = grace, self.lost + 1

    def predicted_box(self, grow: float, ahead: int = 0) -> np.ndarray:
        """Predicted ``xyxy (4,)``: never smaller than the last detection, grown per lost
        frame until the track ended, at most ``_MAX_GROWTH`` times the last detection
        (whatever the Kalman size velocity says); ``ahead`` frames further on (without
        changing the state)."""
        z = (np.linalg.matrix_power(_F, ahead) @ self.x)[:4] if ahead else self.x[:4].copy()
        lost = self.lost + ahead if self.ended is None else self.ended
        grown = np.maximum(z[2:], self.last_wh) * (1.0 + grow * lost)
        z[2:] = np.minimum(grown, self.last_wh * _MAX_GROWTH)
        return _to_xyxy(z)


class Tracker:
    """Associate faces across frames, smooth their boxes and keep masking lost faces.

    Args:
        max_age: frames a lost track keeps being output at its predicted box.
        min_hits: detections a track needs before it is output while lost. A detection
            itself is always output, so the default 1 masks new faces at once.
        iou_threshold: least IoU for a detection to match a predicted box by overlap.
        max_distance: centre-distance fallback, in face sizes of the track.
        smoothing: in ``[0, 1)``; 0 passes detections through, higher values smooth more
            (Kalman measurement noise ``smoothing / (1 - smoothing) / 20`` of face size).
        max_shift: each edge of a smoothed box stays within this fraction of the face size
            of its detection (0.025 keeps IoU with the detection above about 0.9).
        grow_when_lost: a lost track's box grows by this fraction per lost frame (capped at
            2x). 0.05 rather than 0.1 with key frames every 8th frame: fewer spurious new
            tracks (grown boxes match detections worse), less masked area and fewer
            bare frames on the coverage clips.
        uncertain_after: frames of prediction after which :meth:`needs_detection` asks for
            the detector (speed mode).
        search_backoff: a track predicted for longer is looked for (:meth:`to_confirm`)
            on every ``search_backoff``-th frame only; 1 looks on every frame.
        miss_grace: frames a lost track stays after a full detection pass (``searched``
            None) did not find it, then it ends (goes dormant). 0 keeps it only until the
            next frame's window search, unless that finds it.
        remember: frames after its last detection during which an ended track can
            still take a detection at its predicted place and come back with its id
            (a face a crowd's detector finds only now and then keeps one id). Not
            output meanwhile; window searches look for it until ``max_age`` only.
        merge_iou: a lost track whose predicted box has at least this IoU with another
            track's box of the same frame is the same face and merges into it (the
            older id lives on, its detection count added).

    ``update`` returns the detections first, in input order (``data["source"] ==
    "detected"``, smoothed boxes), then the lost tracks (``"predicted"``). Boxes of lost
    tracks may extend past the image; clip them downstream. Track ids start at 1.
    """

    def __init__(
        self,
        *,
        max_age: int = 15,
        min_hits: int = 1,
        iou_threshold: float = 0.2,
        max_distance: float = 1.0,
        smoothing: float = 0.5,
        max_shift: float = 0.025,
        grow_when_lost: float = 0.05,
        uncertain_after: int = 5,
        search_backoff: int = 3,
        miss_grace: int = 2,
        merge_iou: float = 0.3,
        remember: int = 45,
    ) -> None:
        checks = {
            "max_age": (max_age, max_age >= 0),
            "min_hits": (min_hits, min_hits >= 1),
            "iou_threshold": (iou_threshold, 0.0 < iou_threshold <= 1.0),
            "max_distance": (max_distance, max_distance >= 0.0),
            "smoothing": (smoothing, 0.0 <= smoothing < 1.0),
            "max_shift": (max_shift, max_shift >= 0.0),
            "grow_when_lost": (grow_when_lost, grow_when_lost >= 0.0),
            "uncertain_after": (uncertain_after, uncertain_after >= 0),
            "search_backoff": (search_backoff, search_backoff >= 1),
            "miss_grace": (miss_grace, miss_grace >= 0),
            "merge_iou": (merge_iou, 0.0 < merge_iou <= 1.0),
            "remember": (remember, remember >= 0),
        }
        for name, (value, ok) in checks.items():
            if not ok:
                raise ConfigError(f"Tracker: invalid {name}={value!r}")
        self.max_age, self.min_hits = max_age, min_hits
        self.iou_threshold, self.max_distance = iou_threshold, max_distance
        self.max_shift, self.grow_when_lost = max_shift, grow_when_lost
        self.uncertain_after, self.search_backoff = uncertain_after, search_backoff
        self.miss_grace, self.merge_iou, self.remember = miss_grace, merge_iou, remember
        self._r = _R_BASE * smoothing / (1.0 - smoothing) + _R_NONE
        self.reset()

    def reset(self) -> None:
        """Forget every track (e.g. at the start of a new video); ids restart at 1."""
        self._tracks: list[_Track] = []
        self._dormant: list[_Track] = []  # ended on evidence, kept to give their id back
        self._next_id = 1

    def update(self, faces: Faces, *, searched: Collection[int] | None = None) -> Faces:
        """Advance one frame with this frame's detections ``faces`` (n rows).

        ``searched``: the ids of the tracks the detector looked for (speed mode's window
        search); the others may still match a detection but are not counted as missed
        when none does. ``None``: the whole frame was searched.

        Returns ``Faces`` with ``n + k`` rows: the n detections (smoothed, in input
        order) and k lost tracks still within ``max_age``; ``track_id`` is filled.
        """
        for t in self._tracks + self._dormant:
            t.predict()
        rows, cols, _ = self._associate(faces.xyxy, self._tracks)
        matched = dict(zip(cols.tolist(), (self._tracks[r] for r in rows.tolist()), strict=True))
        matched |= self._revive(faces.xyxy, set(matched))
        det_tracks = []
        for i in range(len(faces)):
            lm = None if faces.landmarks is None else faces.landmarks[i]
            z = _to_state(faces.xyxy[i])
            score = float(faces.scores[i])  # type: ignore[index]
            if i in matched:
                t = matched[i]
                t.observe(z, self._r, score, lm)
            else:
                t = self._new_track(z, score, lm)
            det_tracks.append(t)
        for t in self._tracks:
            if searched is None or t.track_id in searched or t.lost == 0:
                t.missed = t.lost > 0
                t.recheck = searched is None and t.missed
            if searched is None and t.lost > 0:
                t.full_pass_missed(self.miss_grace)
        det_tracks = self._merge(faces.xyxy, det_tracks)
        self._retire()
        return self._output(faces.xyxy, det_tracks)

    def predict_only(self) -> Faces:
        """Advance one frame without running the detector (speed mode): every live track
        is output at its predicted box (``"predicted"``) and ages by one frame."""
        for t in self._tracks + self._dormant:
            t.predict()
        self._merge(np.zeros((0, 4), np.float32), [])
        self._retire()
        return self._output(np.zeros((0, 4), np.float32), [])

    def needs_detection(self) -> bool:
        """True when tracking alone is not trusted: a track was missed by the last
        detector pass, has fewer than ``max(min_hits, 2)`` detections (velocity unknown),
        or has been predicted for more than ``uncertain_after`` frames in a row."""
        hits = max(self.min_hits, 2)
        return any(t.missed or t.hits < hits or t.lost > self.uncertain_after for t in self._tracks)

    def to_confirm(self) -> list[int]:
        """Ids of the tracks a window search should confirm now (speed mode): new ones
        (fewer than ``max(min_hits, 2)`` detections, velocity unknown) on the two frames
        after their detection, those the last full detection missed (once), and those
        predicted for more than ``uncertain_after`` frames, on the next frame and then on
        every ``search_backoff``-th. A face the searches keep missing (gone, hidden, or a
        false detection) stays masked at its predicted, growing box until the next full
        detection (then ``miss_grace`` frames) or ``max_age``; searching for it on every
        frame would cost a window per frame and track for nothing. Dormant tracks (ended,
        no longer masked) are looked for on the same schedule until ``max_age``, so a
        face that was only hidden comes back under its id (and is back-filled)."""
        live = [t.track_id for t in self._tracks if t.recheck or self._search_due(t)]
        dormant = [t for t in self._dormant if t.lost <= self.max_age and self._search_due(t)]
        return live + [t.track_id for t in dormant]

    def _search_due(self, t: _Track) -> bool:
        if t.hits < max(self.min_hits, 2):  # new: two looks for its second detection
            return t.lost < 2
        u = self.uncertain_after
        return t.lost > u and (t.lost - u - 1) % self.search_backoff == 0

    def upcoming(self, ids: Collection[int] | None = None) -> np.ndarray:
        """``float32 (k, 4)``: where each live track (or each of ``ids``, live or dormant,
        in track order) is expected in the next frame (the boxes :meth:`update` will match against),
        without advancing any state."""
        boxes = [
            t.predicted_box(self.grow_when_lost, ahead=1)
            for t in self._tracks + self._dormant
            if ids is None or t.track_id in ids
        ]
        return np.array(boxes, np.float32).reshape(-1, 4)

    @property
    def tracks(self) -> int:
        """Number of live tracks."""
        return len(self._tracks)

    def _new_track(self, z: np.ndarray, score: float, lm: np.ndarray | None) -> _Track:
        std = np.array([2 * self._r] * 4 + [10 * _Q_VEL] * 4) * _size(z)
        x = np.concatenate([z, self._common_motion(), np.zeros(2)])
        t = _Track(self._next_id, x, np.diag(std**2), score, z[2:].copy(), lm)
        self._next_id += 1
        self._tracks.append(t)
        return t

    def _common_motion(self) -> np.ndarray:
        """``(vx, vy)`` px per frame shared by the established tracks (median of those
        with 3+ detections, when there are 3+ of them; else 0): a new face in a crowd
        seen by a panning camera most likely moves with the others."""
        v = [t.x[4:6] for t in self._tracks if t.hits >= 3]
        return np.median(v, axis=0) if len(v) >= 3 else np.zeros(2)

    def _alive(self, t: _Track) -> bool:
        if t.lost == 0:
            return True
        if t.grace is not None and t.grace < 0:
            return False
        return t.hits >= self.min_hits and t.lost <= self.max_age

    def _retire(self) -> None:
        """Tracks past ``max_age``, or ended early by a full pass (``miss_grace``), go
        dormant until ``remember`` frames after their last detection: no longer output,
        their box no longer growing (a grown box would take a neighbour's face), but a
        detection at their predicted place gives them back their id (:meth:`_revive`)."""
        ended = [t for t in self._tracks if not self._alive(t)]
        self._tracks = [t for t in self._tracks if self._alive(t)]
        for t in ended:
            t.ended = t.lost if t.ended is None else t.ended
        self._dormant += [t for t in ended if t.hits >= self.min_hits]
        self._dormant = [t for t in self._dormant if t.lost <= self.remember]

    def _revive(self, det: np.ndarray, taken: set[int]) -> dict[int, _Track]:
        """Match detections no live track took to dormant tracks (same rules as live
        ones); a matched dormant track is live again with its old id."""
        free = [i for i in range(len(det)) if i not in taken]
        if not free or not self._dormant:
            return {}
        rows, cols, _ = self._associate(det[free], self._dormant)
        back = {
            free[c]: self._dormant[r] for r, c in zip(rows.tolist(), cols.tolist(), strict=True)
        }
        for t in back.values():
            t.grace = t.ended = None
            self._tracks.append(t)
        self._dormant = [t for t in self._dormant if all(t is not b for b in back.values())]
        return back

    def _merge(self, det: np.ndarray, det_tracks: list[_Track]) -> list[_Track]:
        """Merge duplicate tracks of one face: a lost track whose predicted box (before
        growth) overlaps a detection's box (``merge_iou``) is that face, and of two lost
        tracks overlapping by IoU >= max(``merge_iou``, 0.5) the one with fewer
        detections goes. A new track (first detection now) takes the id and history of
        the lost track it merges with, so one face keeps one id. Returns
        ``det_tracks`` with any such renaming done."""
        lost = [t for t in self._tracks if t.lost > 0]
        if not lost:
            return det_tracks
        pred = np.array([t.predicted_box(0.0) for t in lost])  # where it is, not grown
        gone: set[int] = set()
        if len(det):
            iou = box_iou(pred, det)
            for j, d in enumerate(det_tracks):
                hit = [i for i in np.flatnonzero(iou[:, j] >= self.merge_iou) if i not in gone]
                if not hit:
                    continue
                i = max(hit, key=lambda i: iou[i, j])
                gone.add(int(i))
                if d.hits == 1 and lost[i].track_id < d.track_id:
                    d.track_id, d.hits = lost[i].track_id, d.hits + lost[i].hits
        iou = box_iou(pred, pred)
        order = sorted(range(len(lost)), key=lambda i: (-lost[i].hits, lost[i].track_id))
        for a_pos, a in enumerate(order):
            if a in gone:
                continue
            for b in order[a_pos + 1 :]:
                if b not in gone and iou[a, b] >= max(self.merge_iou, 0.5):
                    gone.add(b)
        drop = {id(lost[i]) for i in gone}
        self._tracks = [t for t in self._tracks if id(t) not in drop]
        return det_tracks

    def _associate(
        self, det: np.ndarray, tracks: list[_Track]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Hungarian matching of ``tracks`` to detections ``det (n, 4)``; returns matched
        ``(track_rows, det_cols, far)`` arrays, ``far`` set where the pair matched by
        centre distance only (IoU below ``iou_threshold``)."""
        if not tracks or not len(det):
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool)
        pred = np.array([t.predicted_box(self.grow_when_lost) for t in tracks])
        iou = box_iou(pred, det)
        pc, dc = (pred[:, :2] + pred[:, 2:]) / 2, (det[:, :2] + det[:, 2:]) / 2
        ps = np.maximum(((pred[:, 2:] - pred[:, :2]).sum(1) / 2), 1.0)[:, None]
        ds = np.maximum(((det[:, 2:] - det[:, :2]).sum(1) / 2), 1.0)[None, :]
        dist = np.linalg.norm(pc[:, None] - dc[None], axis=2) / ps
        near = (dist <= self.max_distance) & (np.maximum(ps / ds, ds / ps) <= 2.0)
        cost = np.where(near, 1.0 + dist, _NO_MATCH)
        cost = np.where(iou >= self.iou_threshold, 1.0 - iou, cost)
        rows, cols = linear_sum_assignment(cost)
        ok = cost[rows, cols] < _NO_MATCH
        return rows[ok], cols[ok], cost[rows[ok], cols[ok]] >= 1.0

    def _smoothed(self, t: _Track, det: np.ndarray) -> np.ndarray:
        """Kalman box of ``t`` kept within ``max_shift`` face sizes of ``det (4,)`` per edge."""
        shift = self.max_shift * float(det[2] - det[0] + det[3] - det[1]) / 2
        return np.clip(_to_xyxy(t.x[:4]), det - shift, det + shift)

    def _output(self, det: np.ndarray, det_tracks: list[_Track]) -> Faces:
        lost = [t for t in self._tracks if t.lost > 0]
        boxes = [self._smoothed(t, d) for t, d in zip(det_tracks, det, strict=True)]
        boxes += [t.predicted_box(self.grow_when_lost) for t in lost]
        tracks = det_tracks + lost
        lms = [t.landmarks for t in det_tracks]
        keep_lm = bool(det_tracks) and not lost and all(lm is not None for lm in lms)
        return Faces(
            xyxy=np.array(boxes, np.float32).reshape(-1, 4),
            scores=np.array([t.score * _SCORE_DECAY**t.lost for t in tracks], np.float32),
            landmarks=np.array(lms) if keep_lm else None,
            track_id=np.array([t.track_id for t in tracks], np.int64),
            data={"source": ["detected"] * len(det_tracks) + ["predicted"] * len(lost)},
        )


def scene_cut(prev_rgb: np.ndarray, cur_rgb: np.ndarray, *, threshold: float = 0.1) -> bool:
    """True if ``cur_rgb`` looks like a new shot after ``prev_rgb`` (RGB ``uint8 (H, W, 3)``,
    sizes may differ).

    Both are shrunk to 64x36 grey thumbnails (area averaging, which also removes sensor
    noise); a cut is a mean absolute difference above ``threshold`` (in ``[0, 1]``). Fast
    pans can trigger it too, which only costs one extra detection.
    """
    return _difference(_thumbnail(prev_rgb), _thumbnail(cur_rgb)) > threshold


def _thumbnail(image: np.ndarray) -> np.ndarray:
    """64x36 grey thumbnail in ``[0, 1]`` of an RGB image or of a grey/luma plane."""
    grey = (
        image if image.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    )
    return cv2.resize(grey, (64, 36), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


def _difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two thumbnails, in ``[0, 1]``."""
    return float(np.mean(np.abs(a - b)))


def should_detect(
    frame_index: int, every_n: int, scene_cut: bool = False, tracker: Tracker | None = None
) -> bool:
    """Speed mode: run the full detector on this frame, or only ``tracker.predict_only()``?

    Detect every ``every_n`` frames (``every_n <= 1``: always), on a scene cut, and
    whenever ``tracker.needs_detection()``.
    """
    if every_n <= 1 or frame_index % every_n == 0 or scene_cut:
        return True
    return tracker is not None and tracker.needs_detection()


class SpeedMode:
    """Speed mode for one video: ``mode.plan(index, image)`` says what to run on a frame.

    ``"detect"``: the full detector, then ``tracker.update`` (every ``every_n`` frames
    and on scene cuts); ``"search"``: the detector only in windows around the expected
    boxes of :meth:`Tracker.to_confirm`, then ``tracker.update(found, searched=ids)``;
    ``"track"``: ``tracker.predict_only()``. With ``search`` off, a frame on which
    :meth:`Tracker.needs_detection` gets a full detection instead.
    """

    def __init__(
        self,
        tracker: Tracker,
        *,
        every_n: int = 5,
        cut_threshold: float = 0.1,
        search: bool = True,
    ):
        if every_n < 1:
            raise ConfigError(f"SpeedMode: every_n must be >= 1, got {every_n}")
        self.tracker, self.every_n, self.cut_threshold = tracker, every_n, cut_threshold
        self.search = search
        self._prev: np.ndarray | None = None

    def plan(self, frame_index: int, image: np.ndarray) -> str:
        """``"detect"``, ``"search"`` or ``"track"`` for this frame; ``image`` is RGB
        ``uint8 (H, W, 3)`` or its grey/luma plane ``(H, W)`` (cheaper for YUV video)."""
        return "detect" if self.full_pass(frame_index, image) else self.between()

    def full_pass(self, frame_index: int, image: np.ndarray) -> bool:
        """The first half of :meth:`plan`: does this frame get the full detector whatever
        the tracks (every ``every_n`` frames, scene cuts)? Depends on the frames alone, so
        it can run ahead of the tracker (video files detect those frames in a thread of
        their own); call it once per frame, in order."""
        thumb = _thumbnail(image)
        prev, self._prev = self._prev, thumb
        cut = prev is not None and _difference(prev, thumb) > self.cut_threshold
        return should_detect(frame_index, self.every_n, cut)

    def between(self) -> str:
        """The second half of :meth:`plan`, for a frame :meth:`full_pass` said no to:
        ``"search"`` or ``"track"`` from the tracks' state (``"detect"`` when
        ``search`` is off and a track is uncertain)."""
        if self.search:
            return "search" if self.tracker.to_confirm() else "track"
        return "detect" if self.tracker.needs_detection() else "track"

    def decide(self, frame_index: int, image: np.ndarray) -> bool:
        """True if the detector should run on this frame (whole or in windows)."""
        return self.plan(frame_index, image) != "track"
