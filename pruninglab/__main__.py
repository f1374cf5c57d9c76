"""``python -m pruninglab ...`` runs the ``pruninglab`` command."""

from pruninglab.scale.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
