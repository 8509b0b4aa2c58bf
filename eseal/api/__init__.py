"""The HTTP service: status endpoints for relying parties, login, enterprise and officer APIs.

Routes live in ``routes_<area>.py`` modules, each exposing ``router`` (a FastAPI APIRouter);
``create_app`` mounts every one it finds, so each area is a file of its own.
"""
