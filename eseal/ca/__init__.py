"""ca: the authority that signs, and nothing else.

The issuer (``authority``: prepare, check, sign, record), certificate ``profiles``, CRLs
(``crl``), the OCSP responder (``ocsp``), the timestamp authority (``tsa``) and publication
of status (``status``). Decisions (enrollment, renewal, freeze, revoke) are the RA's
(``eseal.ra``); the audit log every room writes is ``eseal.audit``; pure helpers are in
``eseal.pki``; storage is ``eseal.store``, as in Boulder. CA keys are token keys reached
through ``eseal.token``.
"""
