from __future__ import annotations

from pathlib import Path

import pytest

from kith.core.config import ConfigurationError, Settings


def make(tmp_path: Path, **values: object) -> Settings:
    return Settings(var_dir=tmp_path, _env_file=None, **values)  # type: ignore[arg-type]


def test_sqlite_file_under_var_dir_by_default(tmp_path: Path) -> None:
    settings = make(tmp_path)
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'kith.db'}"
    assert settings.is_sqlite


def test_environment_variables_are_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KITH_PORT", "9001")
    monkeypatch.setenv("KITH_CORS_ORIGINS", "https://a.example, https://b.example")
    settings = make(tmp_path)
    assert settings.port == 9001
    assert settings.cors_origins == ["https://a.example", "https://b.example"]


def test_production_refuses_short_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="at least 32"):
        make(tmp_path, env="production", secret_key="x" * 31).resolve_secret_key()
    make(tmp_path, env="production", secret_key="x" * 32).resolve_secret_key()


def test_argon2_cannot_go_below_the_owasp_floor(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="argon2_memory_kib"):
        make(tmp_path, argon2_memory_kib=1024)
