"""What installed distributions a distribution requires, read from the installed metadata."""

from __future__ import annotations

from collections.abc import Iterable
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def required_by(distribution: str, extras: Iterable[str] = ()) -> set[str]:
    """The distribution and all it requires with these extras, transitively, as canonical
    names; requirements whose markers exclude this interpreter are left out."""
    required: set[str] = set()
    pending = [(distribution, frozenset(extras))]
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        name, wanted = pending.pop()
        key = (canonicalize_name(name), wanted)
        if key in seen:
            continue
        seen.add(key)
        required.add(key[0])
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            marker = requirement.marker
            if marker is None or any(marker.evaluate({"extra": e}) for e in wanted | {""}):
                pending.append((requirement.name, frozenset(requirement.extras)))
    return required


def installed() -> set[str]:
    return {canonicalize_name(d.metadata["Name"]) for d in metadata.distributions()}


def modules_only_from(distributions: set[str]) -> set[str]:
    """The top-level modules that no distribution outside `distributions` provides."""
    return {
        module
        for module, owners in metadata.packages_distributions().items()
        if {canonicalize_name(owner) for owner in owners} <= distributions
    }
