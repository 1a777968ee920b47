"""gtn: differentiable weighted finite-state graphs (acceptors and transducers) in PyTorch."""
