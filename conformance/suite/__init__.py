"""The conformance suite as pytest runs it: one test per area and sweep, over the areas' machines.

Run it with ``xapi-conformance run``, or ``pytest --pyargs conformance.suite --xapi-target URL``.
"""
