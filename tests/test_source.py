"""pl.show: a notebook reads the library's own code, highlighted, without style sheets."""

from __future__ import annotations

import pruninglab as pl

import pytest


def test_show_gives_the_source_as_text_and_as_highlighted_html():
    shown = pl.show(pl.gimp.level)
    assert repr(shown).startswith("def level(")
    assert "RewindParamBy" in repr(shown)
    html = shown._repr_html_()
    assert "style=" in html and "<style" not in html  # inline: other code keeps its look
    assert "RewindParamBy" in html


def test_show_dedents_a_method():
    assert repr(pl.show(pl.gimp.GIMPConfig.densities)).startswith("def densities(")


@pytest.mark.parametrize("obj", [len, 3, "text"])
def test_show_refuses_what_has_no_python_source(obj):
    with pytest.raises(ValueError, match="no Python source"):
        pl.show(obj)
