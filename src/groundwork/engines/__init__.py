"""Engines: optimize, runtime, serve, monitor."""
