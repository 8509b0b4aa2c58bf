"""holder: what runs on the key holder's machine, shared by the CLI and the browser helper.

The HTTP client that logs in with the USB-Key (``client``), re-keying a token
(``rekey``), and sealing a PDF with revocation data fetched from the service first
(``sealing``, ``revinfo``). It reaches the CA only over HTTP or through a narrow protocol
the caller supplies, and never imports ``ca``, ``ra`` or ``auth``: a holder's machine has no
CA and no database.
"""
