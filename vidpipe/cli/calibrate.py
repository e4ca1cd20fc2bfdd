"""``vidpipe calibrate faces --case DIR --labels CSV [--target-far 0.001] [--json]``"""

from __future__ import annotations

import argparse
from pathlib import Path

from vidpipe.cli.output import emit_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    from vidpipe.search.calibrate import DEFAULT_TARGET_FAR

    p = sub.add_parser("calibrate", help="measure a match threshold on labelled data and store it in the case")
    p.add_argument("kind", choices=["faces"], help="what to calibrate")
    p.add_argument("--case", required=True, type=Path, help="case directory (its embedder is calibrated)")
    p.add_argument("--labels", required=True, type=Path,
                   help="CSV with columns file,identity (paths relative to the CSV)")
    p.add_argument("--target-far", type=float, default=DEFAULT_TARGET_FAR,
                   help=f"false-match rate the threshold may reach (default {DEFAULT_TARGET_FAR})")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from vidpipe.search.calibrate import calibrate_faces

    result = calibrate_faces(args.case, args.labels, args.target_far)
    if args.json:
        emit_json(result)
        return 0
    lab = result["labels"]
    print(f"calibration #{result['calibration_id']} for {result['model_key']}")
    print(f"  labels: {lab['path']} ({lab['photos']} photos, {lab['enrolled']} with a face, "
          f"{lab['identities']} identities)")
    print(f"  pairs: {result['n_genuine']} genuine, {result['n_impostor']} impostor; AUC {result['auc']:.5f}, "
          f"EER {result['eer']:.4f}")
    print(f"  threshold {result['threshold']:.4f} at {result['target']}: measured FAR {result['far']:.4g}, "
          f"FRR {result['frr']:.4g}")
    for p in result["at_far"]:
        print(f"    FAR<={p['target_far']:g}: threshold {p['threshold']:.4f}, FAR {p['far']:.4g}, FRR {p['frr']:.4g}")
    for failure in result["failed_to_enrol"]:
        print(f"  not enrolled: {failure['file']} ({failure['reason']})")
    return 0
