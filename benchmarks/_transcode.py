"""Decode and re-encode a video with no face work: the floor under ``veil video``'s speed.

The same reader and writer as ``veil video`` (yuv420p frames as decoded, libx264 at
veil's default CRF and preset unless given, audio copied), decoding in one thread and
encoding in another, so the frames/s of this command bound what any anonymizer that
re-encodes every frame can reach on the machine. ``video_speed.py`` runs it as its
``transcode`` row::

    python benchmarks/_transcode.py clip.mp4 out.mp4 [--crf 18] [--preset veryfast]
"""

from __future__ import annotations

import argparse
import queue
import sys
import threading

from veil.io.video import VideoReader
from veil.io.video_writer import VideoWriter
from veil.video import VideoConfig

_END = object()


def main(argv: list[str] | None = None) -> int:
    defaults = VideoConfig()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--crf", type=int, default=defaults.crf)
    ap.add_argument("--preset", default=defaults.preset)
    args = ap.parse_args(argv)
    reader = VideoReader(args.src, yuv=True)
    frames: queue.Queue[object] = queue.Queue(8)

    def decode() -> None:  # a decode error is handed over, so the encoder never waits forever
        try:
            with reader:
                for item in reader:
                    frames.put(item)
        except BaseException as exc:
            frames.put(exc)
        frames.put(_END)

    thread = threading.Thread(target=decode, daemon=True)
    thread.start()
    opts = {"codec": defaults.codec, "crf": args.crf, "preset": args.preset}
    with VideoWriter(args.dst, reader.info, source=args.src, **opts) as writer:
        while (item := frames.get()) is not _END:
            if isinstance(item, BaseException):
                raise item  # the writer removes its partial output
            writer.write(item.image, item.pts, item.duration)  # type: ignore[attr-defined]
    thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
