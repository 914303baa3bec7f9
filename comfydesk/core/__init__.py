"""Pure-Python domain: node definitions, workflow graphs, templates and forms, events, errors. No I/O."""
