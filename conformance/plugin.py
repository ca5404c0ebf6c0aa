"""pytest11 entry point of xapi-conformance; inert until its options are used."""
