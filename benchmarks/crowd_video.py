"""Crowd video coverage with per-frame ground truth: veil, deface and deface --backend opencv.

Each clip is a slow pan and zoom across one crowd photo whose face boxes are known
(``../shared/data/faces-crowd-fullres``: full-resolution WIDER FACE crowd photos): a crop
window moves and shrinks (or grows) across the photo and is resized to the output size, so
every face box moves with the same known affine transform. Clips are encoded with libx264
(crf 12) into a work folder. Each tool anonymizes a clip with one whole command; source and
output are decoded in lockstep and measured per frame:

- coverage: share of face-frames covered for ground-truth faces >= 12 px high (covered when
  >= 90 % of the face ellipse changed, :func:`veil.evaluate.evaluate_pair`), and frames
  with at least one such face bare;
- outside: share of the frame's pixels whose grey level changed by more than 12 outside
  every ground-truth box (faces of any size and WIDER's ``ignore`` boxes), nothing
  subtracted; the same figure for veil's image pipeline run on every frame on its own
  (``Pipeline.process`` per frame, written by veil's own video writer) and for the
  writer alone (re-encoding, no face work);
- veil's audit (``--report``): boxes per frame (detected / predicted / back-filled),
  tracks per ground-truth face (every distinct track id / distinct faces visible: this
  also counts tracks on the background faces WIDER leaves unannotated and on false
  detections) and fragments per face (distinct track ids matched, IoU >= 0.2, to each
  annotated face >= 12 px: how often one face changes id);
- wall time of the whole command and veil's speed against each deface, same run.

Example::

    python benchmarks/crowd_video.py --json
    python benchmarks/crowd_video.py --clips 2 --tools veil,image
    python benchmarks/crowd_video.py --real ../shared/data/videos/mmpose_street_demo.mp4
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from veil.boxes import box_iou
from veil.evaluate import evaluate_pair
from veil.track.assignment import linear_sum_assignment

BIN_DIR = Path(sys.executable).parent
DEFAULT_DATA = Path("../shared/data/faces-crowd-fullres")
MIN_FACE = 12.0  # px: coverage targets are for faces at least this high
GREY_TOL = 12  # grey levels: "changed" for the outside measure
TOOLS = ("veil", "deface", "deface-opencv", "image", "encode")

sys.path.insert(0, str(Path(__file__).parent))
import _machine  # noqa: E402

# --- clips -----------------------------------------------------------------------------------


def _ease(t: float) -> float:
    return 0.5 - 0.5 * math.cos(math.pi * t)


def camera(k: int, photo_wh: tuple[int, int], out_wh: tuple[int, int], t: float) -> np.ndarray:
    """Affine ``2x3`` matrix photo -> frame at time ``t`` in ``[0, 1]`` for clip ``k``: a
    crop window of the output's aspect, 90 % -> 65 % of the photo's width (zooming in on
    even ``k``, out on odd), panning from one side of the room it has to the other
    (left to right or back, by ``k``), eased in and out: smooth, the window never
    stopped by the photo's edge; faces move about 2 px per frame, at most 4.5, for 150
    frames at 1024x576."""
    pw, ph = photo_wh
    ow, oh = out_wh
    e = _ease(t)
    zoom = e if k % 2 == 0 else 1.0 - e
    cw = min(pw * (0.9 - 0.25 * zoom), ph * ow / oh * 0.98)
    ch = cw * oh / ow
    u = e if (k // 2) % 2 == 0 else 1.0 - e
    cx = cw / 2 + (pw - cw) * (0.2 + 0.6 * u)  # inside the photo whatever the zoom
    cy = ch / 2 + (ph - ch) * (0.4 + 0.2 * e)
    s = ow / cw
    return np.array([[s, 0.0, -s * (cx - cw / 2)], [0.0, s, -s * (cy - ch / 2)]])


def _map(m: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """xywh boxes ``(n, 4)`` through the scale-and-shift matrix ``m``."""
    s = m[0, 0]
    out = boxes.astype(np.float64) * s
    out[:, 0] += m[0, 2]
    out[:, 1] += m[1, 2]
    return out


def frame_gt(
    m: np.ndarray, faces: np.ndarray, ignore: np.ndarray, out_wh: tuple[int, int]
) -> dict[str, list[Any]]:
    """Ground truth of one frame: ``faces`` (>= 12 px, whole in the frame), ``small``
    (whole, smaller), ``ignore`` (cut by the frame edge, or WIDER's invalid boxes) as xywh,
    and ``ids``/``small_ids`` (face indices in the photo)."""
    ow, oh = out_wh
    gt: dict[str, list[Any]] = {"faces": [], "ids": [], "small": [], "small_ids": [], "ignore": []}
    for i, (x, y, w, h) in enumerate(_map(m, faces)):
        if x + w <= 0 or y + h <= 0 or x >= ow or y >= oh:
            continue
        box = [round(float(v), 2) for v in (x, y, w, h)]
        if x < 0 or y < 0 or x + w > ow or y + h > oh:
            gt["ignore"].append(box)
        elif h >= MIN_FACE:
            gt["faces"].append(box)
            gt["ids"].append(i)
        else:
            gt["small"].append(box)
            gt["small_ids"].append(i)
    for x, y, w, h in _map(m, ignore):
        if x + w > 0 and y + h > 0 and x < ow and y < oh:
            gt["ignore"].append([round(float(v), 2) for v in (x, y, w, h)])
    return gt


def make_clip(
    dst: Path,
    photo: np.ndarray,
    faces: np.ndarray,
    ignore: np.ndarray,
    k: int,
    *,
    size: tuple[int, int],
    frames: int,
    fps: int,
) -> list[dict[str, list[Any]]]:
    """Write the clip (H.264 crf 12, yuv420p) to ``dst`` and its GT beside it."""
    ph, pw = photo.shape[:2]
    gts = []
    with av.open(str(dst), "w") as out:
        vs = out.add_stream("libx264", fps, {"preset": "medium", "crf": "12"})
        vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(frames):
            m = camera(k, (pw, ph), size, i / max(frames - 1, 1))
            img = cv2.warpAffine(photo, m, size, flags=cv2.INTER_CUBIC)
            gts.append(frame_gt(m, faces, ignore, size))
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, fps)
            out.mux(vs.encode(vf))
        out.mux(vs.encode(None))
    dst.with_suffix(".gt.json").write_text(json.dumps(gts))
    return gts


def load_photos(data: Path) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """``(name, RGB photo, faces xywh, ignore xywh)`` for every image of a GT folder."""
    ann = json.loads((data / "annotations.json").read_text())
    out = []
    for rec in ann["images"]:
        bgr = cv2.imread(str(data / rec["file"]))
        if bgr is None:
            raise SystemExit(f"cannot read {data / rec['file']}")
        faces = np.array(rec["faces"], np.float64).reshape(-1, 4)
        ignore = np.array(rec.get("ignore", []), np.float64).reshape(-1, 4)
        out.append((Path(rec["file"]).stem, bgr[:, :, ::-1].copy(), faces, ignore))
    return out


# --- running the tools -----------------------------------------------------------------------


def tool_command(tool: str, src: Path, out: Path, veil_args: list[str]) -> list[str]:
    """The one whole command that anonymizes ``src`` into ``out``."""
    if tool == "deface":
        return [str(BIN_DIR / "deface"), str(src), "-o", str(out)]
    if tool == "deface-opencv":
        return [str(BIN_DIR / "deface"), str(src), "-o", str(out), "--backend", "opencv"]
    veil = [str(BIN_DIR / "veil"), "video", str(src), "-o", str(out), "--overwrite", "-q"]
    return [*veil, "--report", *veil_args]


def image_pipeline(src: Path, out: Path) -> None:
    """veil's image pipeline on every frame on its own, written by veil's video writer."""
    from veil.config import RunConfig
    from veil.pipeline import Pipeline

    pipeline = Pipeline.from_config(RunConfig())
    _rewrite(src, out, lambda img: pipeline.process(img).image)


def encode_only(src: Path, out: Path) -> None:
    """veil's video writer alone: decode and re-encode every frame unchanged."""
    _rewrite(src, out, lambda img: img)


def _rewrite(src: Path, out: Path, fn: Any) -> None:
    from veil.io.video import VideoReader
    from veil.io.video_writer import VideoWriter

    reader = VideoReader(src)
    writer = VideoWriter(out, reader.info, source=src)
    try:
        with reader:
            for df in reader:
                writer.write(fn(df.image), df.pts, df.duration)
        writer.close()
    except BaseException:
        writer.abort()
        raise


def run_tool(tool: str, src: Path, out: Path, veil_args: list[str]) -> dict[str, Any]:
    start = time.perf_counter()
    if tool == "image":
        image_pipeline(src, out)
        cmd = "Pipeline.from_config(RunConfig()).process per frame + VideoWriter"
    elif tool == "encode":
        encode_only(src, out)
        cmd = "VideoReader -> VideoWriter (no face work)"
    else:
        argv = tool_command(tool, src, out, veil_args)
        subprocess.run(argv, check=True, capture_output=True)
        cmd = shlex.join(argv)
    return {"seconds": round(time.perf_counter() - start, 2), "command": cmd}


# --- scoring ---------------------------------------------------------------------------------


def frames(path: Path):  # type: ignore[no-untyped-def]
    with av.open(str(path)) as c:
        for vf in c.decode(video=0):
            yield vf.to_ndarray(format="rgb24")


def _grey(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.int16)


def outside_changed(a: np.ndarray, b: np.ndarray, boxes: list[list[float]]) -> float:
    """Share of pixels whose grey level changed by more than 12 outside every xywh box."""
    changed = np.abs(_grey(a) - _grey(b)) > GREY_TOL
    h, w = changed.shape
    for x, y, bw, bh in boxes:
        x0, y0 = max(math.floor(x), 0), max(math.floor(y), 0)
        x1, y1 = min(math.ceil(x + bw), w), min(math.ceil(y + bh), h)
        changed[y0:y1, x0:x1] = False
    return float(changed.mean())


def score(src: Path, out: Path, gts: list[dict[str, list[Any]]]) -> dict[str, Any]:
    face_frames = covered = bare = small_frames = small_covered = n = 0
    outside = 0.0
    for a, b, gt in zip(frames(src), frames(out), gts, strict=False):
        n += 1
        if b.shape != a.shape:  # deface rounds sizes up to multiples of 16 (rescaled)
            b = cv2.resize(b, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_AREA)
        every = gt["faces"] + gt["small"]
        if every:
            r = evaluate_pair(a, b, np.array(every), gt["ignore"])
            k = len(gt["faces"])
            face_frames += k
            covered += int(r.covered[:k].sum())
            bare += int(not r.covered[:k].all())
            small_frames += len(gt["small"])
            small_covered += int(r.covered[k:].sum())
        outside += outside_changed(a, b, every + gt["ignore"])
    return {
        "frames": n,
        "face_frames": face_frames,
        "coverage": round(covered / face_frames, 4) if face_frames else None,
        "bare_frames": bare,
        "coverage_small": round(small_covered / small_frames, 4) if small_frames else None,
        "outside": round(outside / max(n, 1), 5),
    }


def audit_stats(audit: Path, gts: list[dict[str, list[Any]]] | None = None) -> dict[str, Any]:
    """Boxes per frame by source and track counts from a veil audit JSON; with ground
    truth also tracks per GT face and per-face fragmentation."""
    frames_ = json.loads(audit.read_text())["frames"]
    sources: dict[str, int] = {}
    tracks: set[int] = set()
    boxes = []
    for fr in frames_:
        boxes.append(len(fr["faces"]))
        for f in fr["faces"]:
            sources[f.get("source", "detected")] = sources.get(f.get("source", "detected"), 0) + 1
            tracks.add(int(f.get("track_id", -1)))
    out: dict[str, Any] = {
        "boxes_per_frame": round(float(np.mean(boxes)), 2) if boxes else 0.0,
        "boxes_max": max(boxes, default=0),
        "tracks": len(tracks),
        **{k: sources.get(k, 0) for k in ("detected", "predicted", "backfilled")},
    }
    if gts is not None:
        out |= _track_match(frames_, gts)
    return out


def _track_match(frames_: list[dict[str, Any]], gts: list[dict[str, list[Any]]]) -> dict[str, Any]:
    visible: set[int] = set()
    per_face: dict[int, set[int]] = {}
    for fr, gt in zip(frames_, gts, strict=False):
        ids = gt["ids"] + gt["small_ids"]
        visible.update(ids)
        if not ids or not fr["faces"]:
            continue
        xywh = np.array(gt["faces"] + gt["small"], np.float64)
        g = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        d = np.array([f["box"] for f in fr["faces"]], np.float64)
        iou = box_iou(g, d)
        rows, cols = linear_sum_assignment(1.0 - iou)
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            if iou[r, c] >= 0.2 and r < len(gt["ids"]):
                per_face.setdefault(ids[r], set()).add(int(fr["faces"][c]["track_id"]))
    tracks = {int(f["track_id"]) for fr in frames_ for f in fr["faces"]}
    frag = [len(s) for s in per_face.values()]
    return {
        "gt_faces": len(visible),
        "tracks_per_face": round(len(tracks) / len(visible), 3) if visible else None,
        "fragments_per_face": round(float(np.mean(frag)), 3) if frag else None,
    }


# --- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="photos + annotations.json")
    ap.add_argument("--clips", type=int, default=5, help="clips (one per photo, in order)")
    ap.add_argument(
        "--size", default="1024x576", help="multiples of 16: deface would rescale others"
    )
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--veil-args", default="", help="extra options for veil video")
    ap.add_argument("--reuse", default="", help="tools whose outputs in --work are kept")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--real", type=Path, default=None, help="a real clip: veil audit figures")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="veil-crowd-"))
    work.mkdir(parents=True, exist_ok=True)
    veil_args = shlex.split(args.veil_args)
    if args.real is not None:
        return _real(args.real, work, veil_args, args.json)
    w, h = (int(v) for v in args.size.split("x"))
    size = (w, h)
    tools = args.tools.split(",")
    reuse = set(args.reuse.split(",")) - {""}
    results: dict[str, Any] = {"cpu": _machine.cpu_model(), "work": str(work), "clips": {}}
    for k, (name, photo, faces, ignore) in enumerate(load_photos(args.data)[: args.clips]):
        src = work / f"crowd_{k}_{name}_{args.size}_{args.frames}.mp4"
        if src.exists():
            gts = json.loads(src.with_suffix(".gt.json").read_text())
        else:
            gts = make_clip(
                src, photo, faces, ignore, k, size=size, frames=args.frames, fps=args.fps
            )  # type: ignore[arg-type]
        rows = {}
        for tool in tools:
            out = work / f"{src.stem}.{tool}.mp4"
            saved = out.with_suffix(".row.json")
            if tool in reuse and saved.exists():
                rows[tool] = json.loads(saved.read_text())
                continue
            row = run_tool(tool, src, out, veil_args)
            row |= score(src, out, gts)
            if tool == "veil":
                row |= audit_stats(out.with_suffix(".mp4.audit.json"), gts)
            saved.write_text(json.dumps(row))
            rows[tool] = row
            print(f"{src.name} {tool}: {row}", file=sys.stderr, flush=True)
        per_frame = [len(g["faces"]) for g in gts]
        results["clips"][src.name] = {"faces_per_frame": round(float(np.mean(per_frame)), 1)}
        results["clips"][src.name]["tools"] = rows
    results["overall"] = _overall(results["clips"])
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        _tables(results)
    return 0


def _overall(clips: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    tools = {t for c in clips.values() for t in c["tools"]}
    for tool in sorted(tools):
        rows = [c["tools"][tool] for c in clips.values() if tool in c["tools"]]
        ff = sum(r["face_frames"] for r in rows)
        cov = sum(r["coverage"] * r["face_frames"] for r in rows if r["coverage"] is not None)
        agg = {
            "face_frames": ff,
            "coverage": round(cov / ff, 4) if ff else None,
            "bare_frames": sum(r["bare_frames"] for r in rows),
            "frames": sum(r["frames"] for r in rows),
            "outside": round(float(np.mean([r["outside"] for r in rows])), 5),
            "seconds": round(sum(r["seconds"] for r in rows), 1),
        }
        if tool == "veil":
            tr = sum(r["tracks"] for r in rows)
            gf = sum(r["gt_faces"] for r in rows)
            agg["tracks_per_face"] = round(tr / gf, 3) if gf else None
            agg["fragments_per_face"] = round(
                float(np.mean([r["fragments_per_face"] for r in rows])), 3
            )
            boxes = sum(r["boxes_per_frame"] * r["frames"] for r in rows)
            agg["boxes_per_frame"] = round(boxes / agg["frames"], 2)
            for k in ("detected", "predicted", "backfilled"):
                agg[k] = sum(r[k] for r in rows)
        out[tool] = agg
    if "veil" in out:
        for ref in ("deface", "deface-opencv"):
            if ref in out:
                out["veil"][f"speed_vs_{ref}"] = round(
                    out[ref]["seconds"] / out["veil"]["seconds"], 2
                )
    return out


def _tables(results: dict[str, Any]) -> None:
    print(f"# CPU: {results['cpu']}; clips in {results['work']}")
    head = (
        f"{'clip':<44} {'tool':<14} {'covered':>8} {'bare':>5} {'frames':>6} "
        f"{'small':>6} {'outside':>8} {'seconds':>8}"
    )
    print(head)
    for name, clip in results["clips"].items():
        for tool, r in clip["tools"].items():
            print(
                f"{name[:44]:<44} {tool:<14} {r['coverage']!s:>8} {r['bare_frames']:>5} "
                f"{r['frames']:>6} {r['coverage_small']!s:>6} {r['outside']:>8.4f} "
                f"{r['seconds']:>8.1f}"
            )
        v = clip["tools"].get("veil")
        if v:
            print(
                f"#   faces>=12px/frame {clip['faces_per_frame']}; veil boxes/frame "
                f"{v['boxes_per_frame']} (max {v['boxes_max']}), tracks {v['tracks']} for "
                f"{v['gt_faces']} GT faces ({v['tracks_per_face']}/face, "
                f"{v['fragments_per_face']} fragments/face), detected {v['detected']}, "
                f"predicted {v['predicted']}, back-filled {v['backfilled']}"
            )
    print("\n# overall")
    for tool, r in results["overall"].items():
        print(f"{tool:<14} {json.dumps(r)}")
    o = results["overall"]
    if {"veil", "deface", "image"} <= set(o):
        v, d, im = o["veil"], o["deface"], o["image"]
        checks = {
            "coverage >= 0.99": v["coverage"] >= 0.99,
            "coverage > deface": v["coverage"] > d["coverage"],
            "bare frames < deface": v["bare_frames"] < d["bare_frames"],
            "outside <= 2x image pipeline": v["outside"] <= 2 * im["outside"],
            "tracks per face <= 1.5 (all tracks / GT faces)": v["tracks_per_face"] <= 1.5,
            "track ids per GT face <= 1.5 (fragments)": v["fragments_per_face"] <= 1.5,
        }
        for what, ok in checks.items():
            print(f"# target {what}: {ok}")
    for clip in list(results["clips"].values())[:1]:
        for tool, r in clip["tools"].items():
            print(f"# {tool}: {r['command']}")


def _real(clip: Path, work: Path, veil_args: list[str], as_json: bool) -> int:
    """veil on a real clip without ground truth: audit figures and changed pixels."""
    out = work / f"{clip.stem}.veil.mp4"
    row = run_tool("veil", clip, out, veil_args)
    row |= audit_stats(out.with_suffix(".mp4.audit.json"))
    changed, n = 0.0, 0
    for a, b in zip(frames(clip), frames(out), strict=False):
        changed += outside_changed(a, b, [])
        n += 1
    row |= {"frames": n, "changed": round(changed / max(n, 1), 4), "cpu": _machine.cpu_model()}
    print(json.dumps(row, indent=None if not as_json else 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
