"""ONNX models: the registry, fetching, conversion and the detector runtime shared by edge and server.

Imports nothing else of the project.
"""
