"""Runtimes other than torch for the models (onnxruntime)."""

from dubber.runtime.onnx_bundle import RUNTIMES, load_onnx_models, onnx_export_for

__all__ = ["RUNTIMES", "load_onnx_models", "onnx_export_for"]
