"""Training options: values no task accepts are refused in one line."""

import re

import pytest

from galcnn.errors import as_typed
from galcnn.stages.train import TrainError, TrainOptions


@pytest.mark.parametrize("changes,message", [
    ({"task": "detect"}, "unknown task 'detect'; choose one of classify, segment"),
    ({"arch": "unet"}, "arch unet cannot classify; choose one of resnet, cnn, gcnn"),
    ({"task": "segment", "arch": "cnn"}, "arch cnn cannot segment; choose one of unet"),
    ({"symmetry": "octagonal"}, "unknown symmetry 'octagonal'"),
    ({"class_weights": "x"}, "unknown class_weights 'x'"),
    ({"depth": 9}, "depth must be between 1 and 6, got 9"),
    ({"epochs": 0}, "epochs must be positive, got 0"),
])
def test_bad_values(changes, message):
    """The library names a field as its caller wrote it; the command line (as_typed) names
    the flag."""
    with pytest.raises(TrainError, match="^" + re.escape(message)) as refused:
        TrainOptions(**changes).check()
    option = next(iter(changes)) if len(changes) == 1 else "arch"
    flag = "--" + option.replace("_", "-")
    assert as_typed(refused.value).startswith(message.replace(option, flag, 1))
    TrainOptions().check()
