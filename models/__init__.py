"""The reference model of the XenAPI VM class: pure data in, outcome and new data out."""
