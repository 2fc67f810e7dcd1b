"""What the official SDK's generated classes say a Stripe object looks like: its field names, where null is
allowed, and the values of each enum. `shape_problems` lists every way an object disagrees."""

import sys
import types
import typing

import stripe
from stripe import StripeObject

NONE = type(None)


# Where the SDK keeps the classes an annotation may name besides the top level.
SUBMODULES = (
    "apps billing billing_portal checkout climate entitlements financial_connections forwarding identity "
    "issuing radar reporting sigma tax terminal test_helpers treasury"
).split()


class _Names(dict):
    """The names an annotation may use: the owner's module, then any SDK class (loaded on first use);
    a class of a product this check never meets stands for anything."""

    def __missing__(self, name: str):
        for module in (stripe, *(getattr(stripe, sub) for sub in SUBMODULES)):
            found = getattr(module, name, None)
            if isinstance(found, type):
                return found
        return typing.Any


def _resolve(annotation, owner: type):
    if isinstance(annotation, typing.ForwardRef):
        annotation = annotation.__forward_arg__
    if isinstance(annotation, str):
        module = sys.modules[owner.__module__]
        return eval(annotation, vars(typing), _Names(vars(module)))  # noqa: S307 - the SDK's own annotations
    return annotation


def fields_of(cls: type) -> dict:
    """Every annotated field of an SDK object class (its own and its bases'), unresolved."""
    found: dict = {}
    for klass in reversed(cls.__mro__):
        found.update(getattr(klass, "__annotations__", {}))
    return {name: (annotation, cls) for name, annotation in found.items() if not name.startswith("_")}


def _options(annotation, owner: type) -> list:
    annotation = _resolve(annotation, owner)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return [option for arg in typing.get_args(annotation) for option in _options(arg, owner)]
    return [annotation]


def shape_problems(obj, cls: type, path: str = "") -> list[str]:
    """Each field of `obj` the SDK's class `cls` does not know, holds null where it may not, or holds an
    enum value outside the SDK's list."""
    problems = []
    fields = fields_of(cls)
    for key, value in obj.items():
        where = f"{path}.{key}" if path else key
        if key not in fields:
            problems.append(f"{where}: not a field of {cls.__qualname__}")
            continue
        annotation, owner = fields[key]
        problems.extend(_value_problems(value, _options(annotation, owner), owner, where))
    return problems


def _value_problems(value, options: list, owner: type, where: str) -> list[str]:
    if value is None:
        return [] if NONE in options else [f"{where}: null where the SDK allows none"]
    literals = [
        arg for option in options if typing.get_origin(option) is typing.Literal for arg in typing.get_args(option)
    ]
    if isinstance(value, str):
        # An enum is `Literal[...] | str` only for forward compatibility: the listed values are the enum.
        if literals and value not in literals:
            return [f"{where}: {value!r} is not one of {sorted(literals)}"]
        return []
    if isinstance(value, dict):
        for option in options:
            if isinstance(option, type) and issubclass(option, StripeObject) and option is not StripeObject:
                if option.__name__ == "ListObject" or value.get("object") == "list":
                    return []
                return shape_problems(value, option, where)
            if typing.get_origin(option) is not None and typing.get_origin(option).__name__ == "ListObject":
                item = _resolve(typing.get_args(option)[0], owner)
                return [p for entry in value.get("data", []) for p in shape_problems(entry, item, f"{where}[]")]
        return []
    if isinstance(value, list):
        for option in options:
            if typing.get_origin(option) in (list, typing.List):  # noqa: UP006 - the SDK writes List
                item = _options(typing.get_args(option)[0], owner)
                return [p for entry in value for p in _value_problems(entry, item, owner, f"{where}[]")]
    return []
