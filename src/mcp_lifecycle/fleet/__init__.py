"""Servers we did not write: the fleet file, their processes, the stdio bridge."""
