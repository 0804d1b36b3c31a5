"""Storage layer: the metadata store and the content-addressed artifact store."""
