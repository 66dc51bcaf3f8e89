"""Video tracking: associate faces across frames, fill detector gaps forward
(:class:`Tracker`) and backward (:class:`LookaheadBuffer`), and decide when speed
mode may skip the detector (:func:`should_detect`, :func:`scene_cut`, :class:`SpeedMode`)."""

from veil.track.lookahead import LookaheadBuffer
from veil.track.tracker import SpeedMode, Tracker, scene_cut, should_detect

__all__ = ["LookaheadBuffer", "SpeedMode", "Tracker", "scene_cut", "should_detect"]
