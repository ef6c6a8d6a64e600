"""Training options: values no task accepts are refused in one line."""

import pytest

from galcnn.stages.train import TrainError, TrainOptions


@pytest.mark.parametrize("changes,message", [
    ({"task": "detect"}, "unknown --task 'detect'"),
    ({"arch": "unet"}, "--arch unet cannot classify; choose resnet, cnn"),
    ({"task": "segment", "arch": "cnn"}, "--arch cnn cannot segment; choose unet"),
    ({"symmetry": "octagonal"}, "unknown --symmetry 'octagonal'"),
    ({"depth": 9}, "--depth must be between 1 and 6"),
    ({"epochs": 0}, "must be positive"),
])
def test_bad_values(changes, message):
    with pytest.raises(TrainError, match=message.replace("(", r"\(")):
        TrainOptions(**changes).check()
    TrainOptions().check()
