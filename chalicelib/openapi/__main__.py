"""`make openapi`: write the document to a file (docs/openapi.json), byte-stable across runs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def render(document: dict) -> str:
    return json.dumps(document, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("output", type=Path)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from app import app
    from chalicelib.openapi.document import build

    args.output.write_text(render(build(app)))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
