"""The web face of the service: the enterprise portal (``/portal/``) and the officer and
auditor console (``/console/``).

Pages are rendered on the server (Jinja2, autoescaped) and carry a little JavaScript from
``/static/`` — never inline, never from a CDN — under a Content-Security-Policy that forbids
inline script and framing. A page's session is an HttpOnly, SameSite=Strict cookie the page's
script cannot read; every state change the page makes goes to the JSON API with the
session's CSRF token in a header (:mod:`eseal.api.web.session_cookie`). Who may see a page
is declared on the page route itself (:mod:`eseal.api.web.viewer`), and the JSON routes it
calls check the same roles again on the server.
"""
