"""HealthSim Store state layer: scenarios over the canonical tables, and the
interfaces (command line) that reach them.

The tables, registry and engines it builds on live in :mod:`healthsim_models`.
"""
