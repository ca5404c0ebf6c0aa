"""What the suite judges by: comparison rules (``compare``), ref mapping (``refs``), what a
divergence is (``divergence``) and waived ones (``waivers``)."""
