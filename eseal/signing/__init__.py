"""PDF electronic seals: the seal image, PAdES signing through a token key, verification.

Signing and validation are kept apart, as in pyHanko, which is the PAdES engine underneath.
"""
