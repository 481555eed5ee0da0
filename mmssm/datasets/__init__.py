"""Data sets for the demo and the tests; see ``mmssm.datasets.synthetic`` (also a CLI)."""
