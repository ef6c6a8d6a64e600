"""Names a user can choose from, kept free of heavy imports so that ``--help`` stays instant."""

STRETCH_NAMES = ("asinh", "percentile", "zscale", "log", "linear", "none")
STRETCH_SCOPES = ("image", "band")
FILL_METHODS = ("median", "zero")
FIT_MODES = ("crop", "resize")
GROUPS = ("none", "rot90", "dihedral", "rotate")
DTYPES = ("float32", "float16")
