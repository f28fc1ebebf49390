"""``python -m neuropathy_kg``: the same command as ``neuropathy-kg``."""

from .cli import main

if __name__ == "__main__":
    main(prog_name="neuropathy-kg")
