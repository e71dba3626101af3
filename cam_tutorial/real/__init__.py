"""Real photographs and ImageNet networks, offline and on Colab."""
