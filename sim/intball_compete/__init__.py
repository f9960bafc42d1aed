"""Programming competition on the simulated Kibo: behaviors, sandbox, missions, scoring, store, web API.

Kept empty on purpose: the sandboxed child imports ``intball_compete.api`` / ``.channel`` /
``.child`` only, and must not pull in the simulator (see docs/compete.md).
"""
