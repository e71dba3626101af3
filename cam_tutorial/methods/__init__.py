"""Other saliency maps and their checks: gradients, Grad-CAM, sanity checks, comparisons."""
