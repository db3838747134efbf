"""Loops that repeat gradient -> coefficients -> step kernel -> checks."""
