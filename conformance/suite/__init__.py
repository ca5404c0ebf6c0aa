"""The conformance suite itself: pytest tests that drive the model and the target side by side.

Run it with ``xapi-conformance run``, or ``pytest --pyargs conformance.suite --xapi-target URL``.
"""
