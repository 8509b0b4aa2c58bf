"""eseal: an enterprise CA with USB-Key (PKCS#11) login and PAdES electronic seals.

The package is split into rooms with clear walls (see DESIGN.md): ``token`` speaks PKCS#11,
``ca`` is the authority, ``signing`` makes and checks PDF seals, ``store`` persists, ``api``
and ``cli`` are the two front doors.
"""

__version__ = "0.1.0"
