import pytest

from pulzar.core.config import load_config
from pulzar.core.errors import ConfigError


def test_defaults_need_no_file_and_no_environment():
    config = load_config(env={})
    assert config.server.port == 31414
    assert config.volume.port == 31415
    assert config.master_url == "http://127.0.0.1:31414"


def test_flag_beats_environment_beats_file(tmp_path):
    path = tmp_path / "pulzar.toml"
    path.write_text("[general]\nmaxsize = 7\nretention_policy = 3\n[server]\nport = 1000\n")
    config = load_config(
        path,
        env={"PULZAR_GENERAL_MAXSIZE": "8", "PULZAR_SERVER_PORT": "2000"},
        overrides={("server", "port"): 3000, ("server", "host"): None},
    )
    assert config.general.retention_policy == 3
    assert config.general.maxsize == 8
    assert config.server.port == 3000
    assert config.server.host == "127.0.0.1"


def test_shortcut_variables_set_master_token_and_secret():
    config = load_config(
        env={"PULZAR_MASTER": "http://m:1", "PULZAR_TOKEN": "t", "PULZAR_CLUSTER_SECRET": "s"}
    )
    assert config.volume.master == "http://m:1"
    assert config.security.token == "t"
    assert config.security.cluster_secret == "s"


def test_config_file_is_found_through_pulzar_config(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text("[timers]\nheartbeat = 0.1\n")
    assert load_config(env={"PULZAR_CONFIG": str(path)}).timers.heartbeat == 0.1


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PULZAR_GENERAL_MAXSIZE": "abc"}, r"\[general\] maxsize: expected an integer"),
        ({"PULZAR_TIMERS_HEARTBEAT": "0"}, r"\[timers\] heartbeat must be greater than 0"),
        ({"PULZAR_SERVER_PORT": "70000"}, "not a port number"),
        ({"PULZAR_SERVER_ACCESS_LOG": "maybe"}, "expected true or false"),
        ({"PULZAR_TIMERS_DEAD_AFTER": "1", "PULZAR_TIMERS_SUSPECT_AFTER": "2"}, "dead_after"),
    ],
)
def test_bad_values_fail_with_one_line_naming_the_setting(env, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_config(env=env)
    assert "\n" not in info.value.message


def test_unknown_setting_and_bad_toml_are_reported(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text("[server]\nprot = 1\n")
    with pytest.raises(ConfigError, match=r"unknown setting \[server\] prot"):
        load_config(path, env={})
    path.write_text("[server\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path, env={})
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "missing.toml", env={})
