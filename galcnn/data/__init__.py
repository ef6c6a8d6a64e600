"""The data layer: FITS cutouts in, network inputs and prepared datasets out.

Nothing here knows about networks. Modules, each one concept:

``fitsio``    read images from any HDU, compression, BITPIX; bad pixels made explicit
``inputs``    files, directories, globs and ``@lists`` -> sources (one object each)
``labels``    label tables and class-named folders -> a class per source
``splits``    stratified, seeded train/validation/test assignment
``stretch``   per-image intensity stretches (asinh, percentile, zscale, log, linear)
``geometry``  crop/pad/resize to one size; rotation without empty corners
``augment``   the symmetry groups of augmentation (D4 elements, any-angle rotations)
``recipe``    :class:`Preprocess`, the one recipe that turns an image into a network input
``masks``     pixel masks for training a U-Net
``reader``    a pool of processes that reads sources through the recipe, in order
``dataset``   the prepared-dataset format: reading (memory-mapped) and writing
``shards``    splitting inputs among batch jobs
``atomic``    outputs that appear only when complete
``simulate``  a galaxy simulator with exact masks (examples, tests, benchmarks)
"""
