"""``python -m neuropathy_kg``: the same command as ``neuropathy-kg``; also the application file for
spark-submit (an absolute import: spark-submit runs this file as a script, not as part of the package)."""

from neuropathy_kg.cli import main

if __name__ == "__main__":
    main(prog_name="neuropathy-kg")
