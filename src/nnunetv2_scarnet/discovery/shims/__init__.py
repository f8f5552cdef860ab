"""Files that are placed inside nnU-Net's own folders so that its by-name lookups find our classes."""
