"""Untrusted files, checked as data before anything in them runs (docs/architecture.md, DESIGN "Untrusted files").

  ops.py       the allowlists of TF, TFLite and ONNX ops, as data, a comment per group
  refusal.py   what a checker found, and the one refusal (or, with --trust-code, the record of it)
  graph.py     GraphDefs and their function libraries, SavedModels (before tf.saved_model.load)
  tflite.py    TFLite operator codes (builtin only; custom and Flex refused)
  onnx.py      ONNX node types (default domain) and external-data locations
  archives.py  zip members (names, sizes, ratio, total) and HDF5 external links / storage / virtual datasets
"""
