"""OCTT 1.6 charge-point test cases on the simulated bench, one module per chapter of the OCTT
document, numbered in its order."""
