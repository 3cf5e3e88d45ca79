"""gpiozero drivers for the Pi's GPIO header: the only package that imports gpiozero.

Every driver takes its ``hal.config`` dataclass and an optional ``pin_factory`` handed to each
gpiozero device (tests and the simulated bench pass a ``MockFactory`` instead of touching the
global ``Device.pin_factory``).
"""

from hal.gpio.buzzer import GpioBuzzer
from hal.gpio.contactor import GpioContactor, InterlockedContactor
from hal.gpio.indicator import GpioStatusIndicator
from hal.gpio.lock import GpioConnectorLock
from hal.gpio.power_fail import GpioPowerFailInput
from hal.gpio.safety import GpioSafetyInputs

__all__ = [
    "GpioBuzzer",
    "GpioConnectorLock",
    "GpioContactor",
    "GpioPowerFailInput",
    "GpioSafetyInputs",
    "GpioStatusIndicator",
    "InterlockedContactor",
]
