"""Tests for veil.video.live end to end on loopback: a sender thread streams a generated clip
(the moving astronaut face of test_video_pipeline, frame index as a barcode) as MPEG-TS
over TCP or UDP on 127.0.0.1; run_live reads it and writes a file or another stream.

TCP is the reliable carrier (the sender listens, veil connects; no packet is lost), so the
tests can compare frame by frame. Every thread and socket has a timeout: nothing hangs.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner

import veil.video.live
from test_video_pipeline import ScriptedDetector, face_clip, masked
from veil.anonymize.base import ANONYMIZERS
from veil.config import RunConfig
from veil.errors import InputError
from veil.io.video import VideoReader
from veil.mask import Masker
from veil.pipeline import Pipeline
from veil.video.live import LiveReport, open_source, run_live

FRAMES = 20


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clip_frames(tmp_path: Path, frames: int = FRAMES) -> list[np.ndarray]:
    with VideoReader(face_clip(tmp_path / "src.mp4", frames)) as reader:
        return [d.frame.image for d in reader]


def mpegts(frames: list[np.ndarray]) -> bytes:
    """``frames`` encoded as H.264 in MPEG-TS (key frame every 5 frames, 25 fps)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mpegts") as out:
        vs = out.add_stream("libx264", 25, {"preset": "ultrafast", "crf": "10", "g": "5"})
        h, w = frames[0].shape[:2]
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        for i, img in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, 25)
            out.mux(vs.encode(vf))
        out.mux(vs.encode(None))
    return buf.getvalue()


class Sender(threading.Thread):
    """Stream ``frames`` (as MPEG-TS) on loopback: over TCP to each of ``clients`` readers
    that connect to :attr:`port` (then close), or as 1316-byte UDP datagrams to ``udp_port``
    paced over about ``seconds``. FFmpeg cannot listen in this sandbox, so the socket side
    is Python's; the stream bytes are PyAV's."""

    def __init__(
        self, frames: list[np.ndarray], *, udp_port: int | None = None, clients: int = 1
    ) -> None:
        super().__init__(daemon=True)
        self.data, self.udp_port, self.clients = mpegts(frames), udp_port, clients
        self.error: BaseException | None = None
        if udp_port is None:
            self.server = socket.create_server(("127.0.0.1", 0))
            self.server.settimeout(10)
            self.port = int(self.server.getsockname()[1])

    def run(self) -> None:
        try:
            if self.udp_port is not None:
                self._udp()
            else:
                with self.server:
                    for _ in range(self.clients):
                        conn, _ = self.server.accept()
                        with conn:
                            conn.settimeout(10)
                            conn.sendall(self.data)
        except OSError as exc:  # reported by the test
            self.error = exc

    def _udp(self, seconds: float = 0.8) -> None:
        chunks = [self.data[k : k + 1316] for k in range(0, len(self.data), 1316)]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for chunk in chunks:
                s.sendto(chunk, ("127.0.0.1", self.udp_port))
                time.sleep(seconds / len(chunks))


def solid_pipeline(det: object | None = None) -> Pipeline:
    masker = Masker(shape="box", scale=1.0, drop=0.0)
    return Pipeline(det or ScriptedDetector(), ANONYMIZERS.create("solid"), masker)  # type: ignore[arg-type]


def decode(path: Path) -> list[np.ndarray]:
    with VideoReader(path) as reader:
        return [d.frame.image.astype(int) for d in reader]


def stream_over_tcp(frames: list[np.ndarray], clients: int = 1) -> tuple[Sender, str]:
    sender = Sender(frames, clients=clients)
    sender.start()
    return sender, f"tcp://127.0.0.1:{sender.port}"


def test_tcp_stream_to_file_masks_every_frame(tmp_path: Path) -> None:
    frames = clip_frames(tmp_path)
    sender, url = stream_over_tcp(frames)
    out = tmp_path / "live.mp4"
    report = run_live(url, RunConfig(), output=out, timeout=5, pipeline=solid_pipeline())
    sender.join(10)
    assert sender.error is None
    assert isinstance(report, LiveReport)
    assert report.ended == "eof" and report.frames_in == report.frames_out == FRAMES
    assert report.frames_with_faces == FRAMES and report.detection_failures == 0
    got = decode(out)
    assert len(got) == FRAMES
    for i, frame in enumerate(got):
        assert masked(frame, i), f"frame {i}: face left bare"
        assert not masked(frames[i].astype(int), i)  # the source face was not black


def test_detection_failure_is_obscured_not_passed(tmp_path: Path) -> None:
    frames = clip_frames(tmp_path, 10)
    sender, url = stream_over_tcp(frames)
    out = tmp_path / "live.mkv"
    pipe = solid_pipeline(ScriptedDetector(crash={3}))
    report = run_live(url, RunConfig(), output=out, timeout=5, pipeline=pipe)
    sender.join(10)
    assert report.detection_failures == 1
    got = decode(out)
    assert len(got) == 10
    face = (slice(54, 86), slice(27, 57))  # inside the face box of frame 3
    assert np.abs(got[3][face] - frames[3][face].astype(int)).mean() > 20


def test_max_frames_and_stop_event(tmp_path: Path) -> None:
    frames = clip_frames(tmp_path)
    sender, url = stream_over_tcp(frames)
    report = run_live(url, RunConfig(), max_frames=5, timeout=5, pipeline=solid_pipeline())
    assert (report.ended, report.frames_out) == ("max_frames", 5)
    sender.join(10)
    stop = threading.Event()
    stop.set()
    sender, url = stream_over_tcp(frames)
    report = run_live(url, RunConfig(), stop=stop, timeout=5, pipeline=solid_pipeline())
    assert (report.ended, report.frames_out) == ("stopped", 1)
    sender.join(10)


def test_real_centerface_on_stream(tmp_path: Path) -> None:
    """The default pipeline (CenterFace + blur) changes the face in every frame."""
    frames = clip_frames(tmp_path, 8)
    sender, url = stream_over_tcp(frames)
    out = tmp_path / "live.mp4"
    report = run_live(url, RunConfig(), output=out, timeout=10)
    sender.join(10)
    got = decode(out)
    assert report.frames_out == len(got) == 8
    for i, frame in enumerate(got):
        x = 20 + i
        region = (slice(58, 82), slice(x + 8, x + 32))
        assert np.abs(frame[region] - frames[i][region].astype(int)).mean() > 8, f"frame {i}"


def test_live_output_to_udp_received_by_another_reader(tmp_path: Path) -> None:
    frames = clip_frames(tmp_path)
    sender, url = stream_over_tcp(frames)
    port = free_port(socket.SOCK_DGRAM)
    received: list[np.ndarray] = []
    errors: list[BaseException] = []

    def receive() -> None:
        try:
            for image, _ in open_source(f"udp://127.0.0.1:{port}?fifo_size=100000", timeout=5):
                received.append(image.astype(int))
        except InputError as exc:  # the read timeout after the last packet ends it
            errors.append(exc)

    reader = threading.Thread(target=receive, daemon=True)
    reader.start()
    time.sleep(0.5)  # bind before the first datagram
    out = f"udp://127.0.0.1:{port}"
    run_live(url, RunConfig(), output=out, fps=25, timeout=5, pipeline=solid_pipeline())
    sender.join(10)
    reader.join(15)
    assert not reader.is_alive()
    assert len(received) >= FRAMES - 3  # x264 zerolatency: nearly all frames arrive
    bars = [
        sum(int(f[4:12, b * 16 + 4 : b * 16 + 12].mean() > 128) << b for b in range(8))
        for f in received
    ]
    for index, frame in zip(bars, received, strict=True):
        assert masked(frame, index), f"received frame {index}: face left bare"


def test_udp_input(tmp_path: Path) -> None:
    frames = clip_frames(tmp_path)
    port = free_port(socket.SOCK_DGRAM)
    sender = Sender(frames, udp_port=port)
    result: list[LiveReport] = []

    def read() -> None:
        url = f"udp://127.0.0.1:{port}"
        result.append(
            run_live(url, RunConfig(), max_frames=FRAMES - 6, timeout=3, pipeline=solid_pipeline())
        )

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.5)
    sender.start()
    reader.join(20)
    sender.join(10)
    assert result and result[0].frames_out == FRAMES - 6


@pytest.mark.parametrize(
    "source",
    [
        pytest.param("missing/clip.mp4", id="missing-file"),
        pytest.param("tcp://127.0.0.1:{tcp}", id="tcp-refused"),
        pytest.param("udp://127.0.0.1:{udp}", id="udp-silent"),
    ],
)
def test_unreachable_source_raises_without_retrying(
    source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No wall-clock bound (machines differ): the source's own timeout ends the wait and
    no reconnect delay is slept without --reconnect."""
    slept: list[float] = []
    monkeypatch.setattr(veil.video.live.time, "sleep", slept.append)
    source = source.format(tcp=free_port(), udp=free_port(socket.SOCK_DGRAM))
    with pytest.raises(InputError, match=source.split("?")[0].replace(".", r"\.")):
        run_live(source, RunConfig(), timeout=1.5, pipeline=solid_pipeline())
    assert slept == []


def test_reconnect_gives_up_with_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(veil.video.live.time, "sleep", slept.append)
    source = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(InputError, match="gave up after 2 reconnect attempts"):
        run_live(source, RunConfig(), reconnect=2, timeout=1, pipeline=solid_pipeline())
    assert slept == [0.5, 1.0]  # the backoff, not measured with a clock


def test_reconnect_resumes_a_dropped_stream(tmp_path: Path) -> None:
    frames = clip_frames(tmp_path, 10)
    server, url = stream_over_tcp(frames, clients=2)
    out = tmp_path / "live.mp4"
    report = run_live(
        url,
        RunConfig(),
        output=out,
        max_frames=15,
        reconnect=3,
        timeout=5,
        pipeline=solid_pipeline(),
    )
    server.join(15)
    assert report.reconnects == 1 and report.frames_out == 15
    got = decode(out)
    assert len(got) == 15  # timestamps kept increasing across the reconnect


def test_cli_help() -> None:
    from veil.commands.live import live

    result = CliRunner().invoke(live, ["--help"])
    assert result.exit_code == 0
    for option in ("--preview", "--reconnect", "--max-frames", "--detect-every", "-o"):
        assert option in result.output
