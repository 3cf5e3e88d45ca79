"""The fast lane: the pure core, the middle layer and the HAL drivers on mock pins or a
simulated clock; each test takes a fraction of a second (`scripts/test tests/unit`)."""
