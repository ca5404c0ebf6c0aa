"""`xapi-conformance run`: options, profiles, and the pytest invocation behind it."""
