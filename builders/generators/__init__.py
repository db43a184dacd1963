"""Procedural generators: puzzles whose correct answer is computed and checked, never written by hand.

Each generator draws from an RNG it is given (so items are reproducible from a seed) and proves with
its own solver that every item it returns has exactly one correct answer among its responses.
"""
