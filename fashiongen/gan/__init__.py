"""Training and using generative adversarial networks."""
