"""Lambda handlers, one per file: parse the event, call darkroom.pipeline, shape the result."""
