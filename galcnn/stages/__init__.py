"""What the commands do, one module (or package) per command; no stage imports another.

``prepare``   FITS cutouts -> a prepared dataset
``train``     a prepared dataset -> a run directory with a model and its card
``evaluate``  a model and labelled data -> the validation metrics
``predict``   a model and cutouts -> a table of class beliefs (``embed``: of feature vectors)
``segment``   a U-Net and images -> probability maps, label maps and catalogues
``explain``   a classifier and cutouts -> attribution maps (FITS, PNG) and an index
``similar``   an embedding table and queries -> nearest neighbours (CSV, PNG mosaic)
"""
