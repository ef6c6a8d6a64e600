"""galcnn: CNN morphology classifiers and U-Net saliency maps for astronomical FITS cutouts."""

__version__ = "0.1.0"

__all__ = ["__version__"]
