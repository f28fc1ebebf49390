"""Build hook: the wheel carries the repository's top-level ontology/, shapes/ and queries/ as
neuropathy_kg/artefacts/ (read through guideline.home()). Editable installs get nothing copied: they
read the checkout's folders in place, so an edit to a shape or query is seen at once."""

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

ARTEFACTS = ("ontology", "shapes", "queries")


class ArtefactsHook(BuildHookInterface):
    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name == "wheel" and version == "standard":
            for folder in ARTEFACTS:
                build_data["force_include"][folder] = f"neuropathy_kg/artefacts/{folder}"
