"""CAM for any network: finding a CAM head (global pooling into one Linear) by hooks."""
