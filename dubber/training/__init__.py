"""Training loops (HF accelerate), their data samplers and checkpoints."""
