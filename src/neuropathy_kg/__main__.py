"""`python -m neuropathy_kg`, and the application file for spark-submit (an absolute import: spark-submit
runs this file as a script, not as part of the package)."""

from neuropathy_kg.cli import main

main()
