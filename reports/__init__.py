"""Report renderers: records in, files out."""
