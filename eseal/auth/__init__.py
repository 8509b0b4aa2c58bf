"""auth: who is logged in. USB-Key login (challenge, answer, verification), sessions,
throttling, accounts and their lockout, decided in one place.

It depends on ``store`` and ``pki`` only: the opened CA is handed in as an
:class:`eseal.auth.context.AuthContext`, so nothing here can sign or change certificates.
"""
