"""eseal: an enterprise CA with USB-Key (PKCS#11) login and PAdES electronic seals.

The package is split into rooms with clear walls (README "Architecture", checked by
import-linter): ``pki`` holds pure helpers, ``token`` speaks PKCS#11, ``ca`` signs, ``ra``
decides, ``auth`` logs people in, ``signing`` makes and checks PDF seals, ``holder`` is the
key holder's side, ``store`` persists, ``api`` and ``cli`` are the two front doors.
"""

__version__ = "0.1.0"
