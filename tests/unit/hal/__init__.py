"""HAL drivers on gpiozero mock pins, a simulated clock or fake clients."""
