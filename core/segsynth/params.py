"""Parameter types several components share, so each plugin validates them the same way.

Plugins may not import each other; a field type that more than one plugin needs lives here,
in segsynth's public API.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator

AugmentPolicy = Literal["translation", "cutout", "flip"]
POLICIES: tuple[AugmentPolicy, ...] = ("translation", "cutout", "flip")


def _augment_shorthand(value: Any) -> Any:
    """Accept ``true`` / ``false`` (all policies / none) and comma-separated strings."""
    if value is True:
        return list(POLICIES)
    if value is False or value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _augment_unique(value: list[AugmentPolicy]) -> list[AugmentPolicy]:
    """A policy listed twice would apply twice: almost surely a typo in the recipe."""
    repeated = sorted({p for p in value if value.count(p) > 1})
    if repeated:
        raise ValueError(f"augmentation policies may appear once each; repeated: {', '.join(repeated)}")
    return value


#: A list of differentiable-augmentation policies for a discriminator's inputs, written in a
#: recipe as a list, a comma-separated string, ``true`` (all) or ``false`` (none).
AugmentPolicies = Annotated[
    list[AugmentPolicy], BeforeValidator(_augment_shorthand), AfterValidator(_augment_unique)
]
