"""Shared test setup: every test gets its own feature cache, so runs never see each other's cells."""

import pytest


@pytest.fixture(autouse=True)
def _isolated_feature_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DDR_EVAL_FEATURE_CACHE", str(tmp_path_factory.mktemp("feature-cache")))
