"""The authority: identity rules, profiles, issuance, lifecycle, CRL, OCSP and timestamps.

The CA only signs; policy (identity, profiles, key rules) and storage (``eseal.store``) are
separate rooms, as in Boulder. CA keys are token keys reached through ``eseal.token``.
"""
