"""Fast paths beside the reference model: unpadding, in-place inference, reduced precision."""
