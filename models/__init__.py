"""Networks, their training and their checkpoints (torch is imported by the submodules, not here)."""

SHIPPED_GAN_RECIPE = "cyclegan_both"  # config/models/ name of the recipe that made models/weights/cyclegan.pt
