"""Running a command-line tool's main() in the test process and checking how it ended."""

import re

import pytest


def exit_message(capsys, code, main, argv, match=None):
    """main(argv) must exit with `code`; returns its stderr, which must match `match` if given
    and, for a usage error (2) or a failed run (1), end with one line naming the tool (and hold
    no traceback)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as ended:
        main(argv)
    err = capsys.readouterr().err
    assert ended.value.code == code, f"exit {ended.value.code}, expected {code}: {err[-2000:]}"
    if match is not None:
        assert re.search(match, err), err
    if code in (1, 2):
        last = err.strip().splitlines()[-1]
        assert re.match(r"(npr-\w+: |usage: )", last) and "Traceback" not in err, err
    return err
