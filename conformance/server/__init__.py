"""The embedded reference server: the model served over xapi's wire protocol."""
