"""Sub-commands whose options (and heavy imports) are added only when they are chosen.

``affseg train --help`` lists the trainers without importing any of them (each imports
torch); ``affseg train ndd ...`` builds the ``ndd`` parser's options just before argparse
parses them.

Example
-------
>>> import argparse
>>> parser = argparse.ArgumentParser(prog="demo")
>>> built = []
>>> def options(p):
...     built.append("x")
...     p.add_argument("--n", type=int, default=1)
>>> _ = add_lazy_subparsers(parser, "action", {"x": ("do x", options)})
>>> built
[]
>>> parser.parse_args(["x", "--n", "3"]).n, built
(3, ['x'])
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

#: name -> (one line of help, function that adds the options to the sub-parser)
Builders = Mapping[str, tuple[str, Callable[[argparse.ArgumentParser], None]]]


class LazySubParsers(argparse._SubParsersAction):
    """Sub-parsers whose options are added (once) when their name is parsed.

    Examples
    --------
    >>> p = argparse.ArgumentParser()
    >>> action = add_lazy_subparsers(p, "cmd", {"go": ("go", lambda q: None)})
    >>> isinstance(action, LazySubParsers), action.built
    (True, set())
    """

    builders: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {}
    built: set[str]

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        name = values[0] if isinstance(values, list | tuple) and values else None
        if isinstance(name, str) and name in self.builders and name not in self.built:
            self.builders[name][1](self._name_parser_map[name])
            self.built.add(name)
        super().__call__(parser, namespace, values, option_string)


def add_lazy_subparsers(
    parser: argparse.ArgumentParser, dest: str, builders: Builders, metavar: str | None = None
) -> LazySubParsers:
    """Add required sub-commands ``builders`` to ``parser``, each built when chosen.

    Examples
    --------
    >>> p = argparse.ArgumentParser()
    >>> _ = add_lazy_subparsers(p, "model", {"a": ("model a", lambda q: None)})
    >>> p.parse_args(["a"]).model
    'a'
    """
    action = parser.add_subparsers(
        dest=dest, metavar=metavar or dest.upper(), action=LazySubParsers
    )
    assert isinstance(action, LazySubParsers)
    action.required = True
    action.builders = dict(builders)
    action.built = set()
    for name, (text, _) in builders.items():
        action.add_parser(name, help=text, description=text)
    return action
