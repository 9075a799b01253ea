"""Kilo-style full mesh in user space: the plan is pure data from the member list, applying it is thin."""
