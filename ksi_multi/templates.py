"""The package's jinja2 templates (ksi_multi/templates/)."""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, StrictUndefined

_env = Environment(loader=PackageLoader("ksi_multi", "templates"), undefined=StrictUndefined,
                   keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)


def render(name: str, **values) -> str:
    return _env.get_template(name).render(**values)
