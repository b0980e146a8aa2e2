"""Exports of the models to other runtimes (ONNX)."""

from dubber.export.onnx_export import MANIFEST_NAME, OnnxExport, export_onnx

__all__ = ["MANIFEST_NAME", "OnnxExport", "export_onnx"]
