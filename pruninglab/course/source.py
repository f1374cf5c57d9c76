"""Read the library's own code where a notebook teaches it: ``pl.show(pl.gimp.loop)``."""

from __future__ import annotations

import inspect
import textwrap
from dataclasses import dataclass

__all__ = ["show", "Source"]


@dataclass(frozen=True)
class Source:
    """Source code that a notebook displays highlighted (HTML) and a terminal as text."""

    code: str
    name: str

    def __repr__(self) -> str:
        return self.code

    def _repr_pretty_(self, printer, cycle: bool) -> None:  # IPython's text form
        printer.text(self.code)

    def _repr_html_(self) -> str:
        # inline styles, not a style sheet: the page's other code keeps its look
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import PythonLexer

        formatter = HtmlFormatter(noclasses=True, style="friendly", nobackground=True)
        return highlight(self.code, PythonLexer(), formatter)


def show(obj: object) -> Source:
    """The source of ``obj`` (a function, class, method or module of pruninglab or any
    Python code), shown highlighted when it is a cell's last expression.

    Raises:
        ValueError: ``obj`` has no Python source (a builtin, a C extension, an object made
            at run time).
    """
    try:
        code = inspect.getsource(obj)
    except (TypeError, OSError) as err:
        raise ValueError(f"obj={obj!r:.80} has no Python source to show ({err})") from None
    name = getattr(obj, "__qualname__", getattr(obj, "__name__", type(obj).__name__))
    return Source(textwrap.dedent(code), name)
