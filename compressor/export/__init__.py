"""Export: ONNX (parity-checked, simplified, sparse-stored, int8/fp16), TorchScript, ExportedProgram."""
