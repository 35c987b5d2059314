"""The README's two commands (`tox -e demo`, `tox -e tests`) and the other tox environments install the frameworks
once: tox recreates an environment directory that another environment name used ("env type changed"), so only
the tests environment may live in .tox/cpu, and every other environment that needs the frameworks runs its
commands there after `tox -e tests --notest`."""

from __future__ import annotations

import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _tox() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(ROOT / "tox.ini")
    return cfg


def _key(cfg, env: str, key: str) -> str | None:
    """A key of an environment as tox 4 resolves it: the section, then its bases in order, then [testenv]."""
    section = f"testenv:{env}"
    bases = [b.strip() for b in cfg.get(section, "base", fallback="testenv").split(",")]
    for name in [section, *bases, "testenv"]:
        if cfg.has_option(name, key):
            return cfg.get(name, key)
    return None


def test_only_the_tests_environment_lives_in_the_frameworks_directory():
    cfg = _tox()
    envs = [s.split(":", 1)[1] for s in cfg.sections() if s.startswith("testenv:")]
    assert {"tests", "demo", "browser", "asv"} <= set(envs)
    assert _key(cfg, "tests", "env_dir") == "{work_dir}/cpu"
    for env in envs:
        if env == "tests":
            continue
        assert _key(cfg, env, "env_dir") != "{work_dir}/cpu", env  # would recreate .tox/cpu under another name
        if _key(cfg, env, "skip_install") == "true" and env != "lint":
            pre = _key(cfg, env, "commands_pre").split()
            assert pre[0] == "tox" and pre[-3:] == ["-e", "tests", "--notest"] and "{work_dir}" in pre, env
            commands = [c.strip() for c in _key(cfg, env, "commands").splitlines() if c.strip()]
            assert all(c.startswith("{work_dir}/cpu/bin/") for c in commands), (env, commands)
