"""The digits example: ``python -m groundwork.examples.digits.train`` and ``groundwork pipeline run groundwork.examples.digits.pipeline:digits_pipeline``."""
