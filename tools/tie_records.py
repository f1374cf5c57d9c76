"""Tie the records of a run store written before issue 49 to their run, without recomputing.

Until then a record held ``{"index", "record", "sha256"}``; since, it also names its run's
config hash, under the checksum (``pruninglab.runs.RunDir.write_record``), so a record copied
into another run's folder is not read as that run's. This rewrites each record whose old
checksum still holds, through the store's own ``write_record``; a record that fails its old
checksum is left as it was (it will be recomputed). It is how the packaged records
(``pruninglab/experiments/results/quick``) were migrated, once::

    .venv/bin/python tools/tie_records.py pruninglab/experiments/results/quick

Run it on a store of your own only if you know that every folder's records are that run's:
tying a copied record makes it look like the run's own.
"""

from __future__ import annotations

from pruninglab.experiments import runs

import argparse
import hashlib
import json
from pathlib import Path


def tie(folder: Path) -> tuple[int, int]:
    """Tie the old records of the run folder ``folder``: (rewritten, left as they were)."""
    config = json.loads((folder / "config.json").read_text())
    run = runs.RunDir(folder, config)
    tied = left = 0
    for path in sorted(folder.glob("record_*.json")):
        body = json.loads(path.read_text())
        if "config_hash" in body:
            continue
        claimed = body.pop("sha256", None)
        if claimed != hashlib.sha256(runs._canonical(body).encode()).hexdigest():
            left += 1
            continue
        run.write_record(body["index"], body["record"])
        tied += 1
    return tied, left


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path, help="a run store (a folder of run folders)")
    args = parser.parse_args()
    tied = left = 0
    for folder in sorted(p for p in args.store.iterdir() if (p / "config.json").is_file()):
        a, b = tie(folder)
        tied, left = tied + a, left + b
    print(f"{tied} records tied to their run; {left} left as they were (old checksum fails)")


if __name__ == "__main__":
    main()
