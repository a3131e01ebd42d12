"""The training's "validation: ..." message says what the method's fixed validation batch
holds (each method's ``validation_note``): fixed masks for the masking methods, none for
the blind-spot network, sub-images with pixel shuffle."""

from __future__ import annotations

import pytest

from napari_selfdenoise.core.config import TrainConfig
from napari_selfdenoise.core.events import Message, run_to_end
from napari_selfdenoise.core.methods import METHODS, get_method
from napari_selfdenoise.core.samples import phantom_2d
from napari_selfdenoise.core.training import default_config, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def validation_message(method: str, **params) -> str:
    """The "validation: ..." message of two steps on a 128 x 128 phantom (a 32-row band:
    4 tiles of 32 x 32, repeated to 48 patches)."""
    cfg = default_config(method, steps=2, batch_size=4, patch_size=(32, 32),
                         val_fraction=0.1, network={"base_filters": 4, "depth": 1},
                         params={"method": method, **params})
    events: list = []
    run_to_end(train(phantom_2d((128, 128), seed=1).noisy, cfg), events.append)
    (text,) = [e.text for e in events
               if isinstance(e, Message) and e.text.startswith("validation:")]
    return text


def test_n2s_validates_under_fixed_masks():
    text = validation_message("n2s")
    assert text == ("validation: 4 tiles of a held-out band of each image, 12 fixed mask(s) "
                    "each")


def test_bsn_says_it_has_no_masks():
    text = validation_message("bsn", noise_model="none")
    assert "mask(s)" not in text and "fixed mask" not in text
    assert text == ("validation: 4 tiles of a held-out band of each image, no masks: every "
                    "pixel in the loss (blind spot by architecture)")


def test_pixel_shuffle_counts_sub_images():
    for method in ("n2s", "bsn"):
        cfg = TrainConfig(method=method, params={"method": method, "pixel_shuffle": True,
                                                 "pd_train": 2})
        note = get_method(method).validation_note(cfg, 192, 4)
        assert note.startswith("as 192 pixel-shuffled sub-images (factor 2), ")
        assert ("fixed mask" in note) == (method == "n2s")


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_gives_one_line(name):
    note = METHODS[name].validation_note(TrainConfig(method=name), 48, 4)
    assert note and "\n" not in note
