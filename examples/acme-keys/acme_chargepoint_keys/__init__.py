"""Acme's configuration keys for pi-chargepoint (an example manufacturer plug-in).

* ``Acme.RingBrightness``: Acme's name for the brightness of its LED ring; drives the status
  light at once through the HAL, like the brand keys operators know from commercial chargers.
* ``Acme.SiteLabel``: a label Acme's firmware shows at boot; stored at once, used after a reboot
  (ChangeConfiguration answers RebootRequired).

Each key is declared through a typed handle (``int_key``, ``str_key``): its type comes from the
handle and ``apply`` receives the value as that type, so mypy checks the plug-in.
"""

from __future__ import annotations

from firmware.config_keys import int_key, str_key
from firmware.plugins import VendorContext

RING_BRIGHTNESS = int_key("Acme.RingBrightness")
SITE_LABEL = str_key("Acme.SiteLabel")


def register(ctx: VendorContext) -> None:
    def ring_brightness(percent: int) -> None:
        indicator = ctx.devices.indicator if ctx.devices else None
        if indicator is not None:
            indicator.brightness = percent / 100

    ctx.key(
        RING_BRIGHTNESS,
        70,
        minimum=5,
        maximum=100,
        unit="%",
        description="LED ring brightness (Acme).",
        effect="the light changes at once",
        apply=ring_brightness,
    )
    ctx.key(
        SITE_LABEL,
        "Acme charger",
        max_length=32,
        reboot_required=True,
        description="Label shown at boot (Acme).",
        effect="after a reboot",
    )
