"""The root's gateway token: from the environment, else generated once into the data dir."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from kmsgate.auth.identities import ROOT_TOKEN_FILE_NAME, IdentitiesError, root_token


def test_environment_token_wins_and_nothing_is_written(tmp_path: Path) -> None:
    token = "t" * 40
    assert root_token({"KMSGATE_ROOT_TOKEN": token}, tmp_path) == token
    assert not (tmp_path / ROOT_TOKEN_FILE_NAME).exists()


def test_token_is_generated_once_with_mode_0600_and_then_reused(tmp_path: Path) -> None:
    first = root_token({}, tmp_path)
    assert first is not None and len(first) >= 32
    path = tmp_path / ROOT_TOKEN_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert root_token({}, tmp_path) == first


def test_without_a_data_dir_there_is_no_token() -> None:
    assert root_token({}) is None


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604], ids=oct)
def test_start_up_refuses_a_root_token_file_readable_by_group_or_others(tmp_path: Path, mode: int) -> None:
    token = root_token({}, tmp_path)
    assert token is not None
    path = tmp_path / ROOT_TOKEN_FILE_NAME
    path.chmod(mode)
    with pytest.raises(IdentitiesError, match="readable by group or others") as info:
        root_token({}, tmp_path)
    assert str(path) in str(info.value)
    assert token not in str(info.value)
