"""docs/settings.md lists every setting with its current default (generated from Settings)."""

from terrawatch.settings import REPO_ROOT, settings_markdown


def test_settings_doc_is_current():
    doc = (REPO_ROOT / "docs" / "settings.md").read_text()
    assert doc == settings_markdown(), "regenerate: python -m terrawatch.settings > docs/settings.md"
