"""The judging engine: the one exchange pipeline every call goes through (``harness``), and the
importer that reads a target's VMs back as model records."""
