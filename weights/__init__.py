"""The shipped model weights (``manifest.json`` and the folders it lists), installed as the package
``dubber_weights``: ``dubber.weights.weights_root()`` finds them there."""
