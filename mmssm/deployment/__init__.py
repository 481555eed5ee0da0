"""Deployment: what a config exports to ONNX (models.py) and how it is exported and checked
(export.py); the command-line tools are tools/deployment/. Needs onnx, onnxruntime, onnxscript."""
