"""litefaas: serve compact LiteRT models from serverless functions, end-to-end encrypted."""

__version__ = "0.1.0"
