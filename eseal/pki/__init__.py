"""pki: pure functions and data every room shares, with no I/O.

OIDs, the DER toolkit, CSR loading and key policy, enterprise identity (USCC, names, the
``NTRCN-`` organizationIdentifier built *and* parsed here only), serials, dates, the signed
message formats the key holder and the server must agree on byte for byte, and the one
signature-verify switch. Nothing here opens a file, a token, a database or a socket, so the
holder's side and the server's side can both depend on it.
"""
