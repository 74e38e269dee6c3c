"""Third-party libraries as tfport uses them: one module per library.

Each module holds every private name tfport reaches into that library (the version it was written for
beside it, and one clear line where an upgrade removed the name: `pinned.private`) and the shims that
make an old library run (MMdnn 0.3.1 on today's TF and protobuf). Nothing else imports a private
name of TensorFlow, TFLite, tf2onnx or MMdnn; tests/convert/test_compat.py tries every wrapped name.
"""
