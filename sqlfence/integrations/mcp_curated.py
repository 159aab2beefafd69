"""Curated MCP tools: named, described tools with typed parameters and a SQL template.

A tools file (``sqlfence mcp --tools tools.yaml``)::

    tools:
      - name: orders_of_customer
        description: The newest orders of one customer.
        sql: >
          SELECT id, total FROM orders WHERE customer_id = :customer_id
          ORDER BY placed DESC LIMIT :count
        parameters:
          customer_id: {type: integer, description: "the customer's id"}
          count: {type: integer, default: 20, minimum: 1, maximum: 100}

Each ``:name`` in the SQL is a declared parameter. A call's arguments are validated against
the declared types and bound as the driver's parameters, never written into the text; the
fence judges the template like any other statement. A policy with ``mcp_tools: curated``
gives its identity these tools only.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import SqlglotError
from sqlglot.tokenizer_core import TokenType

from sqlfence.errors import ConfigurationError, PolicyError
from sqlfence.policies import bounded_yaml
from sqlfence.small_files import read_small

BUILTIN_TOOLS = frozenset({"query", "list_tables", "describe_table", "explain"})
_NAMED_PARAMETERS = frozenset({"sqlite", "postgres"})  # :name / %(name)s with a mapping
_PYTHON_TYPES: dict[str, type] = {"string": str, "integer": int, "number": float, "boolean": bool}
_MAX_FILE_BYTES = 1024 * 1024
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Parameter(BaseModel):
    """One typed parameter of a curated tool."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["string", "integer", "number", "boolean"]
    description: str | None = None
    default: str | int | float | bool | None = None
    enum: tuple[str | int | float, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = Field(None, ge=0)

    @property
    def required(self) -> bool:
        """A parameter without a default must be given."""
        return "default" not in self.model_fields_set

    def annotation(self) -> Any:
        """The Python type the SDK builds the input schema and validation from."""
        base: Any = _PYTHON_TYPES[self.type]
        if self.enum is not None:
            base = Literal[self.enum]
        field = Field(
            strict=True,  # "5" is not a number, true is not an integer, 1 is not a boolean
            description=self.description,
            ge=self.minimum,
            le=self.maximum,
            max_length=self.max_length,
        )
        return Annotated[base, field]


class CuratedTool(BaseModel):
    """A named tool: a described SQL template with typed parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
    description: str = Field(min_length=1)
    sql: str = Field(min_length=1)
    title: str | None = None
    parameters: dict[str, Parameter] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _names(self) -> CuratedTool:
        if self.name in BUILTIN_TOOLS:
            raise ValueError(f"{self.name!r} is a built-in tool's name")
        for name in self.parameters:
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", name) or name == "ctx":
                raise ValueError(
                    f"parameter {name!r}: names are lower-case letters, digits and _, "
                    "starting with a letter (and not 'ctx')"
                )
        return self

    def signature(self, context_type: type, returns: Any) -> inspect.Signature:
        """The tool function's signature: the parameters, then the SDK's context."""
        parameters = [
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=parameter.annotation(),
                default=inspect.Parameter.empty if parameter.required else parameter.default,
            )
            for name, parameter in self.parameters.items()
        ]
        context = inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=context_type)
        return inspect.Signature([*parameters, context], return_annotation=returns)

    def function(
        self, call: Callable[..., Any], context_type: type, result: type, schema: type
    ) -> Callable[..., Any]:
        """A function the SDK can register: ``call(self, arguments, ctx)`` behind a signature
        made of the declared parameters, returning ``result`` with the output ``schema``."""

        def tool(ctx: Any, **arguments: Any) -> Any:
            return call(self, arguments, ctx)

        returns: Any = Annotated[result, schema]
        signature = self.signature(context_type, returns)
        tool.__signature__ = signature  # type: ignore[attr-defined]
        tool.__annotations__ = {
            name: parameter.annotation for name, parameter in signature.parameters.items()
        } | {"return": returns}
        tool.__name__ = self.name
        tool.__doc__ = self.description
        return tool


class _ToolsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tools: tuple[CuratedTool, ...] = Field(min_length=1)


def load_tools(path: str | Path) -> tuple[CuratedTool, ...]:
    """The curated tools of a tools file. ConfigurationError names the file and the entry."""
    path = Path(path)
    try:
        data = read_small(path, _MAX_FILE_BYTES)
    except OSError as error:
        raise ConfigurationError(f"tools file {path}: {error.strerror or error}") from None
    if len(data) > _MAX_FILE_BYTES:
        raise ConfigurationError(f"tools file {path}: larger than {_MAX_FILE_BYTES} bytes")
    try:  # the policy files' bounded reader: depth, size, aliases and tags are limited
        document = bounded_yaml.compose(data.decode("utf-8"), str(path)).construct()
    except UnicodeDecodeError as error:
        raise ConfigurationError(f"tools file {path}: not UTF-8: {error}") from None
    except PolicyError as error:
        raise ConfigurationError(f"tools file {error}") from None
    try:
        tools = _ToolsFile.model_validate(document).tools
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise ConfigurationError(f"tools file {path}: {where}: {first['msg']}") from None
    names = [tool.name for tool in tools]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ConfigurationError(f"tools file {path}: tool {twice[0]!r} is declared twice")
    return tools


@dataclass(frozen=True)
class Template:
    """A curated tool's SQL in one dialect, with how arguments become driver parameters."""

    sql: str
    names: tuple[str, ...] | None  # positional order; None: bound by name

    def bind(self, arguments: Mapping[str, Any]) -> dict[str, Any] | tuple[Any, ...]:
        """The driver's parameters for a call's (validated) arguments."""
        if self.names is None:
            return dict(arguments)
        return tuple(arguments[name] for name in self.names)


def compile_template(tool: CuratedTool, dialect: Dialect, dialect_name: str) -> Template:
    """``tool``'s SQL as text for ``dialect`` with its ``:name`` placeholders in the driver's
    style. ConfigurationError for SQL that is not one statement or whose placeholders and
    declared parameters differ."""
    problem = f"curated tool {tool.name!r}"
    try:
        trees = [tree for tree in dialect.parse(tool.sql) if tree is not None]
    except SqlglotError as error:
        raise ConfigurationError(
            f"{problem}: its SQL does not parse: {_first_line(error)}"
        ) from None
    if len(trees) != 1:
        raise ConfigurationError(f"{problem}: its SQL must be exactly one statement")
    tree = trees[0]
    placeholders = list(tree.find_all(exp.Placeholder))
    if any(not _NAME.fullmatch(node.name) for node in placeholders):
        raise ConfigurationError(f"{problem}: use named placeholders (:name), not ?")
    used = {node.name for node in placeholders}
    declared = set(tool.parameters)
    if used - declared:
        raise ConfigurationError(f"{problem}: :{sorted(used - declared)[0]} is not declared")
    if declared - used:
        raise ConfigurationError(f"{problem}: parameter {sorted(declared - used)[0]} is unused")
    if dialect_name in _NAMED_PARAMETERS:
        return Template(tree.sql(dialect=dialect), None)
    order = _placeholder_order(tree.sql(dialect=dialect), dialect)
    if len(order) != len(placeholders):
        raise ConfigurationError(f"{problem}: cannot order its placeholders for {dialect_name}")
    anonymous = tree.transform(
        lambda node: exp.Placeholder() if isinstance(node, exp.Placeholder) else node
    )
    return Template(anonymous.sql(dialect=dialect), order)


def _placeholder_order(sql: str, dialect: Dialect) -> tuple[str, ...]:
    """The names of ``:name`` placeholders in the order they appear in ``sql``."""
    tokens = dialect.tokenize(sql)
    return tuple(
        tokens[i + 1].text
        for i, token in enumerate(tokens[:-1])
        if token.token_type == TokenType.COLON and tokens[i + 1].token_type == TokenType.VAR
    )


def _first_line(error: SqlglotError) -> str:
    details = getattr(error, "errors", None)
    if details:
        first = details[0]
        return f"{first.get('description')} (line {first.get('line')}, col {first.get('col')})"
    return str(error).splitlines()[0]
