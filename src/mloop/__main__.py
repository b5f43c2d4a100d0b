"""``python -m mloop`` runs the command line."""

from __future__ import annotations

from mloop.cli import main

if __name__ == "__main__":
    main()
