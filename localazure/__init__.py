"""The local Azure stand-in: the ARM simulator (``sim``) plus Azurite, started together.

Used by the demo, the tests and the benchmarks; never deployed (``.funcignore`` leaves it out).
"""
