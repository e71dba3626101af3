"""The book's own helpers: the interactive explorer, drawn diagrams, the Colab Drive cache."""
