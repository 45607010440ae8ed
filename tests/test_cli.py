"""The ``skem`` command, run in process through ``main(argv)``."""

import pytest

from skem.cli import main


def test_demo_prints_the_fitted_components(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "NegBinMixture" in out and "BIC" in out and "weight" in out
    # The bundled cells come from three types; the demo's table must show them recovered.
    assert "K = 3" in out


def test_unknown_command_exits_with_usage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["frobnicate"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
