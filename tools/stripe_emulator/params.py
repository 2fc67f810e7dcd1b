"""Stripe's form encoding (`metadata[k]=v`, `line_items[0][price]=...`, `expand[]=...`) and typed reads of it."""

import re
from urllib.parse import parse_qsl

from .errors import ParamError, missing

_TOKEN = re.compile(r"\[([^\[\]]*)\]")


def _split_key(key: str) -> list[str]:
    head, _, rest = key.partition("[")
    parts = [head]
    if rest:
        parts.extend(_TOKEN.findall("[" + rest))
    return parts


def _listify(node):
    if isinstance(node, dict):
        converted = {key: _listify(value) for key, value in node.items()}
        if converted and all(key.isdigit() for key in converted):
            return [converted[key] for key in sorted(converted, key=int)]
        return converted
    return node


def decode(query: str) -> dict:
    """Nested dicts and lists from a form-encoded string, as Stripe reads it."""
    root: dict = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        parts = _split_key(key)
        node = root
        for position, part in enumerate(parts):
            if part == "":
                part = str(len(node))
            last = position == len(parts) - 1
            if last:
                if isinstance(node.get(part), dict):
                    raise ParamError(f"Invalid value for {key}: expected an object.", param=parts[0])
                node[part] = value
            else:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise ParamError(f"Invalid object for {parts[0]}.", param=parts[0])
                node = child
    return _listify(root)


def as_dict(value, param: str) -> dict:
    if value == "":
        return {}
    if not isinstance(value, dict):
        raise ParamError(f"Invalid object for {param}.", param=param)
    return value


def as_list(value, param: str) -> list:
    if value == "":
        return []
    if isinstance(value, dict):
        raise ParamError(f"Invalid array for {param}.", param=param)
    return value if isinstance(value, list) else [value]


def string(params: dict, name: str, *, required: bool = False, max_length: int = 5000, default=None):
    value = params.get(name)
    if value is None:
        if required:
            raise missing(name)
        return default
    if not isinstance(value, str):
        raise ParamError(f"Invalid string: {value!r}", param=name)
    if len(value) > max_length:
        raise ParamError(f"Invalid string: must be at most {max_length} characters long.", param=name)
    return value


def integer(params: dict, name: str, *, required: bool = False, minimum: int | None = None, maximum: int | None = None):
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise missing(name)
        return None
    if not isinstance(value, str) or not re.fullmatch(r"-?\d+", value):
        raise ParamError(f"Invalid integer: {value}", param=name)
    number = int(value)
    if minimum is not None and number < minimum:
        raise ParamError(f"Invalid {name}: must be greater than or equal to {minimum}", param=name)
    if maximum is not None and number > maximum:
        raise ParamError(f"Invalid {name}: must be less than or equal to {maximum}", param=name)
    return number


def boolean(params: dict, name: str, *, default=None):
    value = params.get(name)
    if value is None:
        return default
    if value not in ("true", "false"):
        raise ParamError(f"Invalid boolean: {value}", param=name)
    return value == "true"


def choice(params: dict, name: str, options: tuple[str, ...], *, required: bool = False, default=None):
    value = string(params, name, required=required)
    if value is None:
        return default
    if value not in options:
        raise ParamError(
            f"Invalid {name}: must be one of {', '.join(options)}", param=name, code="parameter_invalid_string"
        )
    return value


def string_list(params: dict, name: str) -> list[str]:
    values = as_list(params.get(name, []), name)
    if not all(isinstance(item, str) for item in values):
        raise ParamError(f"Invalid array for {name}.", param=name)
    return values


METADATA_MAX_KEYS = 50
METADATA_MAX_KEY_LENGTH = 40
METADATA_MAX_VALUE_LENGTH = 500


def apply_metadata(current: dict, params: dict) -> dict:
    """Stripe's metadata rules: keys merge, an empty value unsets a key, `metadata=""` clears all."""
    if "metadata" not in params:
        return current
    raw = params["metadata"]
    if raw == "":
        return {}
    update = as_dict(raw, "metadata")
    merged = dict(current)
    for key, value in update.items():
        if not isinstance(value, str):
            raise ParamError(f"Invalid value for metadata[{key}]: must be a string.", param=f"metadata[{key}]")
        if len(key) > METADATA_MAX_KEY_LENGTH:
            raise ParamError(
                f"Metadata keys can have up to {METADATA_MAX_KEY_LENGTH} characters. You passed in a key of "
                f"{len(key)} characters: {key}",
                param=f"metadata[{key}]",
            )
        if len(value) > METADATA_MAX_VALUE_LENGTH:
            raise ParamError(
                f"Metadata values can have up to {METADATA_MAX_VALUE_LENGTH} characters, but you passed in a value "
                f"that is {len(value)} characters. Invalid value: {value[:20]}...",
                param=f"metadata[{key}]",
            )
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    if len(merged) > METADATA_MAX_KEYS:
        raise ParamError(
            f"You can have up to {METADATA_MAX_KEYS} metadata keys, but you passed in {len(merged)} keys.",
            param="metadata",
        )
    return merged
