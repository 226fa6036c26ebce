"""Fault injection: helpers that make real faults (see README.md in this folder for the index
of every fault test)."""
