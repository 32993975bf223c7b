"""Settings thresholds belong to the configured model only."""

from clipmatch.inference.sources import resolve_model
from clipmatch.services import thresholds_for
from conftest import TINY_THRESHOLDS

SETTINGS_CUTS = {
    "title": {"pass": 0.31, "hold": 0.21},
    "description": {"pass": 0.3, "hold": 0.2},
}


def test_settings_thresholds_apply_to_the_configured_model(use_model, tiny_clip_dir):
    use_model(tiny_clip_dir, SETTINGS_CUTS)
    assert thresholds_for(resolve_model(str(tiny_clip_dir))).title_pass == 0.31


def test_another_model_is_judged_by_its_own_thresholds_not_the_settings(
    use_model, tiny_clip_dir, bundled_model_dir
):
    use_model(bundled_model_dir, SETTINGS_CUTS)
    own = thresholds_for(resolve_model(str(tiny_clip_dir)))
    assert own.title_pass == TINY_THRESHOLDS["title"]["pass"]
    assert own.title_hold == TINY_THRESHOLDS["title"]["hold"]
