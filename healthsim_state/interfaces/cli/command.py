"""The click group behind ``healthsim``: help in the usual command-line form, text arguments checked.

typer 0.29 labels types ``<int>``, ``<bool>``, ``<list[Path]>`` and writes
required arguments as ``{name}`` in usage lines; it creates the parameter
objects itself and has no hook for their class. The root group therefore
gives every parameter of every command, once when the command tree is
built, a subclass that labels types as click always did (``INTEGER``,
``TEXT``, ``PATH``, ``[table|csv|json]``, none for a flag) and writes
arguments in capitals (``NAME``, ``[FILE]``). Those subclasses also refuse
text that is not UTF-8 as a usage error, while the command line is parsed.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, get_args

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

#: Text parameters that name files ('-' for stdin/stdout): an undecodable name is a real file's name there.
_FILE_PARAMETERS = frozenset({"file"})

_LABELS = {str: "TEXT", int: "INTEGER", float: "FLOAT", bool: "BOOLEAN"}


def _label(param: TyperOption | TyperArgument) -> str:
    """The click-style name of a parameter's type."""
    desc = param.type_descriptor
    if desc.is_choice:
        return "[" + "|".join(str(c.value if isinstance(c, Enum) else c) for c in desc.choices or ()) + "]"
    if desc.is_path:
        return desc.path_type.upper()
    annotation = desc.annotation
    if desc.is_list:
        annotation = get_args(annotation)[0]
    return _LABELS.get(annotation, getattr(annotation, "__name__", str(annotation)).upper())


def _check_text(param: TyperOption | TyperArgument, ctx: typer.Context, value: Any) -> None:
    """Refuse text that is not valid UTF-8 (the shell hands such bytes over as lone surrogates),
    before it reaches a driver that cannot encode it."""
    if param.name in _FILE_PARAMETERS:
        return
    for text in value if isinstance(value, list | tuple) else [value]:
        if isinstance(text, str):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                shown = text.encode("utf-8", "backslashreplace").decode("utf-8")
                raise typer.BadParameter(f"'{shown}' is not valid UTF-8 text", ctx=ctx, param=param) from None


class _Option(TyperOption):
    def display_type(self, ctx: typer.Context) -> str:
        return self.metavar or _label(self)

    def display_type_rich(self, ctx: typer.Context) -> str | None:
        return None if self.is_flag else self.display_type(ctx)

    def process_value(self, ctx: typer.Context, value: Any) -> Any:
        value = super().process_value(ctx, value)
        _check_text(self, ctx, value)
        return value


class _Argument(TyperArgument):
    def display_type(self, ctx: typer.Context) -> str:
        return _label(self)

    def _usage_display_name(self) -> str:
        name = self.display_name_raw.upper()
        name = name if self.required else f"[{name}]"
        return name if self.nargs == 1 else f"{name}..."

    def process_value(self, ctx: typer.Context, value: Any) -> Any:
        value = super().process_value(ctx, value)
        _check_text(self, ctx, value)
        return value


def _reflow(text: str | None) -> str | None:
    """Docstring paragraphs as one line each: typer's rich help keeps their line breaks."""
    if text is None:
        return None
    return "\n\n".join(" ".join(paragraph.split()) for paragraph in text.strip().split("\n\n"))


def _labelled_help_option(option: TyperOption | None) -> TyperOption | None:
    """click makes the --help option when help is first asked for: it gets the same labels."""
    if type(option) is TyperOption:
        option.__class__ = _Option
    return option


class _Command(TyperCommand):
    def get_help_option(self, ctx: typer.Context) -> TyperOption | None:
        return _labelled_help_option(super().get_help_option(ctx))


class _Group(TyperGroup):
    def get_help_option(self, ctx: typer.Context) -> TyperOption | None:
        return _labelled_help_option(super().get_help_option(ctx))


def _adopt(command: TyperCommand | TyperGroup) -> None:
    # Subclasses that add behaviour only, no state: changing the class converts nothing.
    if type(command) is TyperCommand:
        command.__class__ = _Command
    elif type(command) is TyperGroup:
        command.__class__ = _Group
    command.help = _reflow(command.help)
    for param in command.params:
        if type(param) is TyperOption:
            param.__class__ = _Option
        elif type(param) is TyperArgument:
            param.__class__ = _Argument
    for sub in getattr(command, "commands", {}).values():
        _adopt(sub)


class HealthsimGroup(_Group):
    """The root group; its commands and their subcommands are built before it, so it adopts them all."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        _adopt(self)
