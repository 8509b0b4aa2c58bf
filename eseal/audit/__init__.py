"""audit: the hash-chained audit log, its signed checkpoints and the anchors that vouch for it.

Why a room of its own: every room writes the log (the RA's decisions, auth's logins and
lockouts, the CA's signatures), and the auditor reads it without touching anything else, so
it is not the CA's business more than anyone's: DESIGN.md's "ca/ signs, nothing else" left
it in ca/ only because the CA token holds the key that signs its checkpoints. That key is
handed in by whoever opens the home (``eseal.ca.authority``), so the log itself needs only
the store (its rows), the token (the checkpoint record on the CA token, ``head``) and pki
(the DER of the CRL extension, ``anchor``). The room sits below ca and ra, which import it,
and above token and store; signing and holder may not reach it (they have no database), and
auth, which must not reach the token, writes to it through ``eseal.auth.context`` (the log
object the opened home hands in), as the import-linter contracts in pyproject.toml say.

``log`` (append, checkpoint, verify), ``head`` (the newest checkpoint kept on the CA token),
``anchor`` (the log's head carried in every published CRL).
"""
