"""Lists (`limit`, `starting_after`, `ending_before`), search queries and `expand[]`, as Stripe answers them."""

import base64
import copy
import re
from collections.abc import Callable, Iterable

from .errors import ParamError, StripeError
from .includable import MISSING
from .params import integer, string

DEFAULT_LIMIT = 10
MAX_LIMIT = 100


def _position(items: list[dict], object_id: str, param: str) -> int:
    for index, item in enumerate(items):
        if item["id"] == object_id:
            return index
    raise StripeError(400, f"No such object: '{object_id}'", code="resource_missing", param=param)


def created_filter(params: dict, items: Iterable[dict]) -> list[dict]:
    """`created=ts` or `created[gt|gte|lt|lte]=ts`."""
    created = params.get("created")
    if created is None:
        return list(items)
    if isinstance(created, str):
        exact = integer(params, "created")
        return [item for item in items if item.get("created") == exact]
    bounds = {op: integer(created, op) for op in ("gt", "gte", "lt", "lte")}
    checks = {
        "gt": lambda a, b: a > b,
        "gte": lambda a, b: a >= b,
        "lt": lambda a, b: a < b,
        "lte": lambda a, b: a <= b,
    }
    return [
        item
        for item in items
        if all(bound is None or checks[op](item.get("created", 0), bound) for op, bound in bounds.items())
    ]


def paginate(items: list[dict], params: dict, url: str) -> dict:
    """One page of `items` (already newest first) as a Stripe list object."""
    limit = integer(params, "limit", minimum=1, maximum=MAX_LIMIT) or DEFAULT_LIMIT
    starting_after = string(params, "starting_after")
    ending_before = string(params, "ending_before")
    if starting_after and ending_before:
        raise ParamError(
            "You may only specify one of these parameters: ending_before, starting_after.", param="ending_before"
        )
    items = created_filter(params, items)
    if starting_after:
        start = _position(items, starting_after, "starting_after") + 1
        page, has_more = items[start : start + limit], start + limit < len(items)
    elif ending_before:
        end = _position(items, ending_before, "ending_before")
        start = max(0, end - limit)
        page, has_more = items[start:end], start > 0
    else:
        page, has_more = items[:limit], len(items) > limit
    return {"object": "list", "data": page, "has_more": has_more, "url": url}


# --- search -------------------------------------------------------------------------------

_CLAUSE = re.compile(
    r"""\s*(?P<negate>-)?
        (?P<field>metadata\[(?P<q>['"])(?P<key>[^'"]+)(?P=q)\]|[a-z_]+)
        \s*(?P<op>:|~|>=|<=|>|<)\s*
        (?:'(?P<single>[^']*)'|"(?P<double>[^"]*)"|(?P<bare>[^\s]+))
        \s*""",
    re.VERBOSE,
)


def _parse_query(query: str) -> tuple[str, list[dict]]:
    clauses, joiner, position = [], None, 0
    while position < len(query):
        match = _CLAUSE.match(query, position)
        if not match:
            raise ParamError(f"Invalid search query: could not parse near '{query[position:][:30]}'.", param="query")
        value = next(v for v in (match["single"], match["double"], match["bare"]) if v is not None)
        clauses.append(
            {
                "field": "metadata" if match["key"] else match["field"],
                "key": match["key"],
                "op": match["op"],
                "value": value,
                "negate": bool(match["negate"]),
            }
        )
        position = match.end()
        rest = re.match(r"(AND|OR)\s+", query[position:])
        if rest:
            if joiner and joiner != rest[1]:
                raise ParamError("Invalid search query: AND and OR cannot be combined.", param="query")
            joiner = rest[1]
            position += rest.end()
    if not clauses:
        raise ParamError("Missing required param: query.", param="query")
    return joiner or "AND", clauses


def _clause_matches(item: dict, clause: dict, fields: set[str]) -> bool:
    field, op, wanted = clause["field"], clause["op"], clause["value"]
    if field not in fields:
        raise ParamError(f"Field '{field}' is an unsupported search field for this resource.", param="query")
    actual = item.get("metadata", {}).get(clause["key"]) if field == "metadata" else item.get(field)
    if isinstance(actual, bool):
        actual = "true" if actual else "false"
    if op in (">", "<", ">=", "<="):
        try:
            number, bound = float(actual), float(wanted)
        except (TypeError, ValueError):
            return False
        return {">": number > bound, "<": number < bound, ">=": number >= bound, "<=": number <= bound}[op]
    if actual is None:
        return False
    actual = str(actual).lower()
    wanted = wanted.lower()
    return wanted in actual if op == "~" else actual == wanted


def search(items: list[dict], params: dict, url: str, fields: set[str]) -> dict:
    """`GET /v1/<resource>/search?query=email:'a@b.c' AND metadata['k']:'v'`."""
    query = string(params, "query", required=True)
    limit = integer(params, "limit", minimum=1, maximum=MAX_LIMIT) or DEFAULT_LIMIT
    joiner, clauses = _parse_query(query)
    combine = all if joiner == "AND" else any
    found = [
        item
        for item in items
        if combine(_clause_matches(item, c, fields) != c["negate"] for c in clauses)  # negate flips the match
    ]
    page_token = string(params, "page")
    offset = 0
    if page_token:
        try:
            offset = int(base64.urlsafe_b64decode(page_token.encode()).decode())
        except ValueError as exc:
            raise ParamError("Invalid page token.", param="page") from exc
    page = found[offset : offset + limit]
    more = offset + limit < len(found)
    return {
        "object": "search_result",
        "data": page,
        "has_more": more,
        "next_page": base64.urlsafe_b64encode(str(offset + limit).encode()).decode() if more else None,
        "total_count": len(found),
        "url": url,
    }


# --- expand ----------------------------------------------------------------------------------

Resolver = Callable[[str], dict | None]
# (object, field) -> the value of a field shown only when expanded, or `includable.MISSING`.
VirtualField = Callable[[dict, str], object]


def expand(obj: dict, paths: list[str], resolve: Resolver, virtual: VirtualField | None = None) -> dict:
    """Replace ids with the objects they name along each dotted path (`customer`, `data.product`)."""
    if not paths:
        return obj
    result = copy.deepcopy(obj)
    for path in paths:
        if not isinstance(path, str) or not path:
            raise ParamError("Invalid expand parameter.", param="expand")
        if path.count(".") >= 4:
            raise ParamError(f"You cannot expand more than 4 levels of a property. Property: {path}", param="expand")
        _expand_path(result, path.split("."), path, resolve, virtual)
    return result


def _expand_path(node, parts: list[str], path: str, resolve: Resolver, virtual: VirtualField | None) -> None:
    if not parts or node is None:
        return
    key, rest = parts[0], parts[1:]
    if isinstance(node, dict) and node.get("object") in ("list", "search_result") and key == "data":
        for item in node["data"]:
            _expand_path(item, rest, path, resolve, virtual)
        return
    if not isinstance(node, dict):
        raise ParamError(f"This property cannot be expanded ({path}).", param="expand")
    value = node.get(key)
    if key not in node and virtual is not None:
        value = virtual(node, key)
        if value is MISSING:
            raise ParamError(f"This property cannot be expanded ({key}).", param="expand")
        node[key] = value
    elif isinstance(value, str):
        target = resolve(value)
        if target is None:
            raise ParamError(f"This property cannot be expanded ({key}).", param="expand")
        node[key] = value = copy.deepcopy(target)
    elif key not in node:
        raise ParamError(f"This property cannot be expanded ({key}).", param="expand")
    _expand_path(value, rest, path, resolve, virtual)
