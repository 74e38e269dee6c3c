"""PyTorch building blocks that carry TF semantics (SAME padding, input affine, pooling, BN lookup).

Imports torch at module level: only code that already runs in PyTorch imports from here.
"""
