"""Networks: the GAN's generator and discriminator, and the evaluator."""
