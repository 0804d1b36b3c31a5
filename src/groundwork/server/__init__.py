"""The JSON API (``/api/v1``) behind ``groundwork ui``, and later the team server's read API.

One router module per noun (``runs``, ``metrics``, ``artifacts``, ``lineage``,
``models``, ``pipelines``); :func:`groundwork.server.app.create_app` joins them
into one ASGI app with the canonical error handler. Every answer is JSON; a
mistake of the caller is a 4xx whose body is :func:`groundwork.errors.error_body`.
"""

from __future__ import annotations

from groundwork.server.app import create_app

__all__ = ["create_app"]
