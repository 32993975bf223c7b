"""The one settings reader: lazy, validated, and in step with base.py and the README."""

import ast
import re

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

from clipmatch import conf

SETTINGS_DIR = django_settings.BASE_DIR / "config" / "settings"


def test_a_value_is_read_when_asked_for_not_at_import(settings):
    settings.CLIPMATCH = {**settings.CLIPMATCH, "BATCH_SIZE": 7}
    settings.CLIPMATCH_API = {**settings.CLIPMATCH_API, "WEBHOOK_TIMEOUT": 9}

    assert (conf.get("BATCH_SIZE"), conf.get("WEBHOOK_TIMEOUT")) == (7, 9)


def test_an_unknown_name_is_a_key_error():
    with pytest.raises(KeyError, match="Unknown clipmatch setting 'BATCH'"):
        conf.get("BATCH")


def test_a_bad_value_is_refused_when_it_is_read(settings):
    settings.CLIPMATCH = {**settings.CLIPMATCH, "REVIEW_AGING_HOURS": 0}

    with pytest.raises(ImproperlyConfigured) as raised:
        conf.get("REVIEW_AGING_HOURS")

    assert str(raised.value) == (
        "CLIPMATCH_REVIEW_AGING_HOURS must be a number above 0, not 0."
    )
    assert conf.get_or_none("REVIEW_AGING_HOURS") is None


def test_a_key_missing_from_settings_is_refused_not_defaulted(settings):
    settings.CLIPMATCH = {
        k: v for k, v in settings.CLIPMATCH.items() if k != "AUDIT_RATE"
    }

    with pytest.raises(ImproperlyConfigured, match="has no 'AUDIT_RATE'"):
        conf.get("AUDIT_RATE")


def _env_names(tree: ast.AST) -> list[str]:
    """The variables read by env(...), env.int(...) and the like."""
    names = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and node.args):
            continue
        func = node.func
        is_env = (isinstance(func, ast.Name) and func.id == "env") or (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id == "env"
        )
        first = node.args[0]
        if is_env and isinstance(first, ast.Constant) and isinstance(first.value, str):
            names.append(first.value)
    return names


def _settings_tree(name: str) -> ast.Module:
    return ast.parse((SETTINGS_DIR / f"{name}.py").read_text())


def _readme_table_names() -> set[str]:
    text = (django_settings.BASE_DIR / "README.md").read_text()
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    names = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", first_cell))
    return names


def test_every_environment_variable_is_in_the_readme_table_and_only_those():
    # test.py is left out: its variables are the test suite's, not an operator's.
    read = {
        name
        for module in ("base", "local", "production")
        for name in _env_names(_settings_tree(module))
    }
    documented = _readme_table_names()

    assert sorted(read - documented) == [], "read by config/settings, not in README"
    assert sorted(documented - read) == [], "in the README, read by no setting"


@pytest.mark.parametrize("group", conf.GROUPS)
def test_base_py_reads_each_key_from_the_variable_the_reader_names(group):
    (dict_node,) = [
        node.value
        for node in _settings_tree("base").body
        if isinstance(node, ast.Assign)
        and [getattr(t, "id", None) for t in node.targets] == [group]
    ]
    in_base = {
        key.value: next(iter(_env_names(value)), "")
        for key, value in zip(dict_node.keys, dict_node.values, strict=True)
    }

    assert in_base == {s.key: s.env for s in conf.SETTINGS.values() if s.group == group}
