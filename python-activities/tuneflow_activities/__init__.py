"""tuneflow's Python activity worker: everything that touches model weights, served on task queue tuneflow-gpu."""
