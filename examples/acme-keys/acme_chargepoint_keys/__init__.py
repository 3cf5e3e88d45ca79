"""Acme's configuration keys for pi-chargepoint (an example manufacturer plug-in).

* ``Acme.RingBrightness``: Acme's name for the brightness of its LED ring; drives the status
  light at once through the HAL, like the brand keys operators know from commercial chargers.
* ``Acme.SiteLabel``: a label Acme's firmware shows at boot; stored at once, used after a reboot
  (ChangeConfiguration answers RebootRequired).
"""

from __future__ import annotations

from firmware.config_keys import KeyDefinition, KeyType, Value
from firmware.plugins import VendorContext


def register(ctx: VendorContext) -> None:
    def ring_brightness(value: Value) -> None:
        indicator = ctx.devices.indicator if ctx.devices else None
        if indicator is not None and isinstance(value, int):
            indicator.brightness = value / 100

    ctx.declare(KeyDefinition("Acme.RingBrightness", KeyType.INTEGER, 70, minimum=5,
                              maximum=100, unit="%",
                              description="LED ring brightness (Acme).",
                              effect="the light changes at once"),
                apply=ring_brightness)
    ctx.declare(KeyDefinition("Acme.SiteLabel", KeyType.STRING, "Acme charger", max_length=32,
                              reboot_required=True,
                              description="Label shown at boot (Acme).",
                              effect="after a reboot"))
