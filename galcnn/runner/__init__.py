"""The runner layer: what every command that runs a model over inputs is made of.

``model``       a checkpoint opened once: its model on a device, in a precision, pooled or
                not, with its card and checksum (:func:`open_model`)
``pipeline``    sources in, ordered batches of network inputs (or one problem per source)
                out; it owns reading, the recipe and where the recipe runs
``table``       tables whose columns are declared once (name, kind, unit, format), written
                as CSV or as a FITS table with their metadata, streamed and resumable
``provenance``  the keywords every FITS product carries, the same in each
``stream``      the loop of predict and embed: sources through a model into a table
``training_set`` cutouts through the recipe into a prepared training set (``prepare``, and
                ``train`` on raw cutouts)

The stages compose these; adding a column to a table, or a command that runs a model over
inputs, touches the stage's own declaration and nothing here.
"""
