"""The conformance suite's areas: state machines and sweeps that drive the model and a target side
by side, and the generators they draw from (``conformance.suite`` runs them under pytest)."""
