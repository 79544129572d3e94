"""Sensitivities of the native engine: backprop through the solver, and continuous adjoints."""
