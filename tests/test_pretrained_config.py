"""Settings from ZOO_* variables and keyword arguments, and ZOO_MIRROR's URL rewriting."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch.hub
from _pipeline import isolate

import zoo
from zoo import config


@pytest.fixture
def zoo_env(tmp_path, monkeypatch):
    return isolate(tmp_path, monkeypatch)


def test_defaults(zoo_env, monkeypatch):
    for key in ("ZOO_CACHE_DIR", "ZOO_RETRIES", "ZOO_BACKOFF", "ZOO_TIMEOUT", "ZOO_LOCK_TIMEOUT"):
        monkeypatch.delenv(key)
    s = config.resolve()
    assert s.cache_dir == Path(torch.hub.get_dir()) / "slimzoo"
    assert (s.offline, s.mirror, s.registry, s.keep_tarballs) == (False, None, None, False)
    assert (s.connect_timeout, s.read_timeout, s.retries) == (10.0, 60.0, 5)


def test_environment_and_keyword_precedence(zoo_env, monkeypatch, tmp_path):
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    monkeypatch.setenv("ZOO_MIRROR", "https://mirror.example/slim")
    monkeypatch.setenv("ZOO_TIMEOUT", "3")
    monkeypatch.setenv("ZOO_KEEP_TARBALLS", "true")
    s = config.resolve()
    assert s.offline and s.keep_tarballs and s.cache_dir == zoo_env
    assert s.mirror == "https://mirror.example/slim/"  # a base URL gets its slash
    assert (s.connect_timeout, s.read_timeout) == (3.0, 3.0)
    s = config.resolve(cache_dir=tmp_path / "other", offline=False)
    assert s.cache_dir == tmp_path / "other" and not s.offline


@pytest.mark.parametrize(
    "variable, value",
    [
        ("ZOO_OFFLINE", "maybe"),
        ("ZOO_RETRIES", "-1"),
        ("ZOO_BACKOFF", "fast"),
        ("ZOO_TIMEOUT", "1,2,3"),
        ("ZOO_TIMEOUT", "0"),
        ("ZOO_MIRROR", "ftp://mirror/"),
        ("ZOO_LOCK_TIMEOUT", "nan"),
    ],
)
def test_invalid_settings_name_the_variable(zoo_env, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(zoo.ConfigError) as info:
        config.resolve()
    assert variable in str(info.value) and repr(value) in str(info.value)


@pytest.mark.parametrize(
    "url, rewritten",
    [
        (
            "http://download.tensorflow.org/models/vgg_16_2016_08_28.tar.gz",
            "https://m.example/slim/vgg_16_2016_08_28.tar.gz",
        ),
        (
            "https://storage.googleapis.com/download.tensorflow.org/models/"
            "mobilenet_v1_2018_02_22/mobilenet_v1_1.0_224.tgz",
            "https://m.example/slim/mobilenet_v1_2018_02_22/mobilenet_v1_1.0_224.tgz",
        ),
        (
            "https://storage.googleapis.com/mobilenet_v2/checkpoints/mobilenet_v2_1.0_224.tgz",
            "https://m.example/slim/mobilenet_v2/checkpoints/mobilenet_v2_1.0_224.tgz",
        ),
        ("https://models.corp.example/x.tar.gz", "https://models.corp.example/x.tar.gz"),
    ],
)
def test_mirror_rewrites_the_public_hosts_only(url, rewritten):
    assert config.apply_mirror(url, "https://m.example/slim/") == rewritten
    assert config.apply_mirror(url, None) == url


def test_every_shipped_release_url_is_mirrorable():
    """An internal mirror can serve every release (no URL outside the known public bases)."""
    for name in zoo.list_pretrained():
        url = zoo.model_info(name).release.url
        assert config.apply_mirror(url, "https://m.example/") != url, name
