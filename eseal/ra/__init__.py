"""ra: the registration authority, where decisions are made. Enrollment and enrollment
codes, staff tokens, renewal, re-key, freeze/unfreeze/revoke (which end the holder's
sessions in the same transaction), expiry notices and SO PINs. It asks ``ca`` to sign and
``auth`` to end sessions; it never speaks HTTP.
"""
