"""The license policy: which model licenses this company allows."""

from __future__ import annotations

from feldspar.config import Settings
from feldspar.errors import LicenseRefused
from feldspar.models.spec import UNKNOWN_LICENSE, ModelSpec


def is_allowed(spec: ModelSpec, settings: Settings) -> bool:
    """Whether the policy allows the model's license (SPDX ids compare case-insensitively)."""
    allowed = {lic.casefold() for lic in settings.allowed_licenses}
    return spec.license.casefold() in allowed


def check_license(spec: ModelSpec, settings: Settings) -> None:
    """Raise `LicenseRefused` with the way to allow the license, unless the policy allows it."""
    if is_allowed(spec, settings):
        return
    if spec.license == UNKNOWN_LICENSE:
        raise LicenseRefused(
            f"Model '{spec.name}' has no known license, which the license policy does not "
            "allow; register it with its license: feldspar models add NAME --path FILE "
            "--license SPDX-ID"
        )
    allowed = [*settings.allowed_licenses, spec.license]
    raise LicenseRefused(
        f"Model '{spec.name}' is licensed {spec.license}, which the license policy does not "
        f"allow; to allow it, add it to allowed_licenses in {settings.config_path} "
        f"(allowed_licenses = {allowed!r}) or set FELDSPAR_ALLOWED_LICENSES"
    )
