"""Core layer: tracking, environment capture, lineage, pipelines, registry."""
