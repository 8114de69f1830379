"""`core/paths.py`: what a HYP_HOME that cannot be used is said to be, and what to do about it."""

from __future__ import annotations

import os


def test_a_hyp_home_on_a_read_only_file_system_is_not_told_to_check_its_mode(tmp_path, monkeypatch) -> None:
    """A HYP_HOME on a file system mounted read-only was told to "check that it belongs to you and is readable
    and writable (mode 0700)", which no chmod fixes (message audit): remount it, or use a writable place."""
    from hypaware_tui.core import paths

    home = tmp_path / "hyp"
    home.mkdir()
    real_access = os.access
    monkeypatch.setattr(paths.os, "access", lambda p, mode: False if mode & os.W_OK else real_access(p, mode))
    monkeypatch.setattr(paths, "_why_not_writable", lambda folder: "its file system is mounted read-only")
    text = paths.hyp_home_problem(home, create=True)
    assert text == (f"HYP_HOME is {home}, a directory this user may not write in (its file system is mounted "
                    "read-only). Remount it read-write, or point HYP_HOME at a directory on a writable disk, and "
                    "run it again.")
    monkeypatch.setattr(paths, "_why_not_writable", lambda folder: "permission denied")
    assert "(mode 0700)" in paths.hyp_home_problem(home, create=True)


def test_a_hyp_home_this_user_may_open_but_not_list_is_said_to_be_unreadable(tmp_path, monkeypatch) -> None:
    """A HYP_HOME whose directory may be entered but not read (mode 0300 or 0100) is unusable: checking that it
    may be entered alone let it through, read as empty (mutation audit). Root passes every access check, so the
    check is made to answer as for another user."""
    from hypaware_tui.core import paths

    home = tmp_path / "hyp"
    home.mkdir()
    real_access = os.access
    monkeypatch.setattr(paths.os, "access", lambda p, mode: False if mode & os.R_OK else real_access(p, mode))
    fault = f"HYP_HOME is {home}, a directory this user may not read (permission denied)"
    assert paths.hyp_home_fault(home) == fault
    assert paths.hyp_home_problem(home) == (
        f"{fault}. Check that it belongs to you and is readable and writable (mode 0700), or point HYP_HOME at a "
        "directory of yours, and run it again.")
