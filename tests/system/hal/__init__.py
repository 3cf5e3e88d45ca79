"""HAL drivers against real pymodbus servers and serial pseudo-terminals."""
