"""The model layer announces activation and shadowing after commit, never before."""

import pytest
from django.contrib.auth import get_user_model

from clipmatch.services import (
    model_version_activate,
    model_version_register,
    model_version_shadow,
)
from clipmatch.signals import model_version_activated, model_version_shadowed
from conftest import build_tiny_clip

pytestmark = pytest.mark.django_db
ACCEPTED = {"accepted": True, "refusals": [], "metrics": {"validation": {}}}


@pytest.fixture
def version(tmp_path):
    path = build_tiny_clip(tmp_path / "tiny-signals", seed=3)
    registered, _ = model_version_register(path=str(path), report=ACCEPTED)
    return registered


@pytest.fixture
def staff():
    return get_user_model().objects.create_user("lead", is_staff=True)


@pytest.fixture
def heard():
    calls = []

    def receiver(sender, **kwargs):
        calls.append((kwargs["signal"], kwargs["version_id"]))

    model_version_activated.connect(receiver, dispatch_uid="test-heard")
    model_version_shadowed.connect(receiver, dispatch_uid="test-heard")
    yield calls
    model_version_activated.disconnect(dispatch_uid="test-heard")
    model_version_shadowed.disconnect(dispatch_uid="test-heard")


def test_activation_is_announced_once_after_the_commit(
    version, staff, heard, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        model_version_activate(version=version, actor=staff)
    assert heard == []

    for callback in callbacks:
        callback()

    assert heard == [(model_version_activated, version.pk)]


def test_shadowing_is_announced_once_after_the_commit(
    version, staff, heard, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        model_version_shadow(version=version, actor=staff)

    assert heard == [(model_version_shadowed, version.pk)]
