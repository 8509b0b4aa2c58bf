"""Find every error code the eseal package can produce, by reading its source (AST).

A code is produced where an ``EsealError`` subclass is constructed, or a helper that passes
one of its own parameters on as such a code (``_pdf_error(code, ...)``), or a ``DoorCode``
is declared. The code argument is followed through literals, ``a if c else b``, names bound
to literals in the same function or module, ``*TUPLE`` whose first item is a literal, and
tuples returned by a helper of the same module (``code, en, zh = self._unreadable(exc)``).
Anything else is a *dynamic* site, which the registry test must know by name, so a new one
is looked at by a person instead of slipping past.

Classes whose constructor takes something other than the code first (the OCSP and TSA
protocol errors, the login refusal) are described in :data:`SPECIAL`.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "eseal"


def _camel_to_snake(name: str) -> str:
    return "".join("_" + c if c.isupper() else c.upper() for c in name)


#: constructors that do not take the code as their first argument: what code a literal
#: first argument becomes (``None``: the codes are listed by the test from their table)
SPECIAL: dict[str, Callable[[str], str] | None] = {
    "OcspProtocolError": lambda status: "OCSP_" + _camel_to_snake(status),
    "TsaProtocolError": lambda fail_info: "TSA_" + _camel_to_snake(fail_info),
    "LoginRefused": None,      # codes: auth.refusals.REASONS and LOGIN_REFUSED
    "LoginRateLimited": None,  # code: RATE_LIMITED
    "ServiceError": None,      # the holder's copy of a server's answer: the server's code
}


@dataclass(frozen=True)
class Site:
    """One place a code is produced: which code, through which class or helper."""

    code: str
    cls: str
    where: str  # path:line relative to the package's parent


@dataclass
class Scan:
    sites: list[Site] = field(default_factory=list)
    dynamic: list[tuple[str, str, str]] = field(default_factory=list)  # where, function, expr
    classes: dict[str, str] = field(default_factory=dict)  # error class -> its base's name

    def codes(self) -> dict[str, set[str]]:
        """code -> the classes it is raised through."""
        out: dict[str, set[str]] = defaultdict(set)
        for site in self.sites:
            out[site.code].add(site.cls)
        return out


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _error_classes(trees: dict[Path, ast.Module]) -> dict[str, str]:
    classes = {"EsealError": ""}
    grew = True
    while grew:
        grew = False
        for tree in trees.values():
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and node.name not in classes:
                    base = next((b for b in map(_name, node.bases) if b in classes), None)
                    if base is not None:
                        classes[node.name] = base
                        grew = True
    return classes


class _Module:
    """One module's functions, its module-level literal bindings and its parent links."""

    def __init__(self, path: Path, tree: ast.Module) -> None:
        self.path = path
        self.tree = tree
        self.parent: dict[ast.AST, ast.AST] = {}
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                self.parent[child] = node
        #: names taken with ``from eseal.x import name``: name -> (path of x, name there)
        self.imports: dict[str, tuple[Path, str]] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                    and node.module.startswith("eseal"):
                base = PACKAGE.parent.joinpath(*node.module.split("."))
                target = base.with_suffix(".py") if base.with_suffix(".py").exists() \
                    else base / "__init__.py"
                for alias in node.names:
                    self.imports[alias.asname or alias.name] = (target, alias.name)
        self.functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                self.functions.setdefault(node.name, node)

    def enclosing_class(self, node: ast.AST) -> str | None:
        while node in self.parent:
            node = self.parent[node]
            if isinstance(node, ast.ClassDef):
                return node.name
        return None

    def enclosing(self, node: ast.AST) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
        while node in self.parent:
            node = self.parent[node]
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                return node
        return None


def _is_super_init(call: ast.Call) -> bool:
    return (isinstance(call.func, ast.Attribute) and call.func.attr == "__init__"
            and isinstance(call.func.value, ast.Call) and _name(call.func.value.func) == "super")


def _params(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    names = [a.arg for a in fn.args.posonlyargs + fn.args.args]
    return names[1:] if names and names[0] in ("self", "cls") else names


def _bound_values(scope: ast.AST, name: str) -> list[ast.expr] | None:
    """What ``name`` is bound to by plain assignments directly in ``scope`` (None: never)."""
    found: list[ast.expr] = []
    body: Iterable[ast.AST] = ast.walk(scope) if not isinstance(scope, ast.Module) \
        else scope.body
    for node in body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id == name:
                    found.append(node.value)
                elif (isinstance(target, ast.Tuple) and target.elts
                      and isinstance(target.elts[0], ast.Name) and target.elts[0].id == name):
                    found.append(ast.Subscript(value=node.value,
                                               slice=ast.Constant(value=0), ctx=ast.Load()))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) \
                and node.target.id == name and node.value is not None:
            found.append(node.value)
    return found or None


class Scanner:
    def __init__(self, package: Path = PACKAGE) -> None:
        self.root = package.parent
        self.modules = {p: _Module(p, ast.parse(p.read_text(encoding="utf-8")))
                        for p in sorted(package.rglob("*.py"))}
        self.classes = _error_classes({p: m.tree for p, m in self.modules.items()})
        # (module path or None for a class, callee name) -> index of the code argument
        self.callees: dict[tuple[Path | None, str], int] = {
            (None, c): 0 for c in self.classes if c not in SPECIAL}
        self.callees[(None, "DoorCode")] = 0

    # -- which calls take a code ------------------------------------------------------------
    def _code_index(self, module: _Module, call: ast.Call) -> int | None:
        name = _name(call.func)
        if name is None:
            return None
        if (None, name) in self.callees:
            return self.callees[(None, name)]
        if self._chosen_class(module, call) is not None:
            return 0
        if _is_super_init(call) and module.enclosing_class(call) in self.classes:
            return 0
        local = (module.path, name)
        if local in self.callees and (isinstance(call.func, ast.Name) or (
                isinstance(call.func, ast.Attribute) and _name(call.func.value) in
                ("self", "cls"))):
            return self.callees[local]
        if isinstance(call.func, ast.Name) and name in module.imports:
            return self.callees.get(module.imports[name])
        return None

    def _find_wrappers(self) -> None:
        """Helpers that pass one of their parameters on as a code become code callees."""
        grew = True
        while grew:
            grew = False
            for module in self.modules.values():
                for call in (n for n in ast.walk(module.tree) if isinstance(n, ast.Call)):
                    index = self._code_index(module, call)
                    if index is None or index >= len(call.args):
                        continue
                    arg = call.args[index]
                    fn = module.enclosing(call)
                    if fn is None or not isinstance(arg, ast.Name):
                        continue
                    params = _params(fn)
                    key = (module.path, fn.name)
                    if arg.id in params and key not in self.callees:
                        self.callees[key] = params.index(arg.id)
                        grew = True

    # -- what a code argument can be --------------------------------------------------------
    def _values(self, module: _Module, expr: ast.expr, scope: ast.AST | None,
                depth: int = 0) -> set[str] | None:
        """Every literal ``expr`` can be, or None if it is not made of literals."""
        if depth > 6:
            return None
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            return {expr.value}
        if isinstance(expr, ast.IfExp):
            a = self._values(module, expr.body, scope, depth + 1)
            b = self._values(module, expr.orelse, scope, depth + 1)
            return a | b if a is not None and b is not None else None
        if isinstance(expr, ast.Starred):
            return self._first_of(module, expr.value, scope, depth)
        if isinstance(expr, ast.Subscript) and isinstance(expr.slice, ast.Constant) \
                and expr.slice.value == 0:
            return self._first_of(module, expr.value, scope, depth)
        if isinstance(expr, ast.Name):
            for where in (scope, module.tree):
                if where is None:
                    continue
                bound = _bound_values(where, expr.id)
                if bound is not None:
                    out: set[str] = set()
                    for value in bound:
                        got = self._values(module, value, scope, depth + 1)
                        if got is None:
                            return None
                        out |= got
                    return out
        return None

    def _first_of(self, module: _Module, expr: ast.expr, scope: ast.AST | None,
                  depth: int) -> set[str] | None:
        """The first item of a tuple literal, a name bound to one, or a same-module call
        returning tuple literals."""
        if isinstance(expr, ast.Tuple) and expr.elts:
            return self._values(module, expr.elts[0], scope, depth + 1)
        if isinstance(expr, ast.Name):
            for where in (scope, module.tree):
                bound = _bound_values(where, expr.id) if where is not None else None
                if bound is not None:
                    out: set[str] = set()
                    for value in bound:
                        got = self._first_of(module, value, scope, depth + 1)
                        if got is None:
                            return None
                        out |= got
                    return out
        if isinstance(expr, ast.Call) and (name := _name(expr.func)) in module.functions:
            fn = module.functions[name]
            returns = [n.value for n in ast.walk(fn) if isinstance(n, ast.Return)]
            out = set()
            for value in returns:
                got = self._first_of(module, value, fn, depth + 1) if value else None
                if got is None:
                    return None
                out |= got
            return out or None
        return None

    # -- the scan ---------------------------------------------------------------------------
    def scan(self) -> Scan:
        self._find_wrappers()
        result = Scan(classes=dict(self.classes))
        for module in self.modules.values():
            rel = module.path.relative_to(self.root)
            for call in (n for n in ast.walk(module.tree) if isinstance(n, ast.Call)):
                name = _name(call.func)
                where = f"{rel}:{call.lineno}"
                fn = module.enclosing(call)
                if name in SPECIAL and (None, name) not in self.callees:
                    transform = SPECIAL[name]
                    if transform is None:
                        continue
                    values = self._values(module, call.args[0], fn) if call.args else None
                    if values is None:
                        result.dynamic.append((str(rel), fn.name if fn else "",
                                               ast.unparse(call)))
                        continue
                    result.sites.extend(Site(transform(v), name, where) for v in values)
                    continue
                index = self._code_index(module, call)
                if index is None:
                    continue
                if index >= len(call.args):
                    continue
                arg = call.args[index]
                if fn is not None and isinstance(arg, ast.Name) and arg.id in _params(fn) \
                        and (module.path, fn.name) in self.callees:
                    continue  # passed on: the helper's callers are the sites
                values = self._values(module, arg, fn)
                if values is None:
                    result.dynamic.append((str(rel), fn.name if fn else "", ast.unparse(arg)))
                    continue
                cls = self._class_of(module, call, name or "")
                result.sites.extend(Site(v, cls, where) for v in values)
        return result

    def _chosen_class(self, module: _Module, call: ast.Call
                      ) -> tuple[str, ast.expr, str, str] | None:
        """``cls(...)`` where ``cls = A if flag else B`` names two error classes in the
        enclosing function: (flag, its test, A, B)."""
        if not isinstance(call.func, ast.Name) or call.func.id in self.classes:
            return None
        fn = module.enclosing(call)
        bound = _bound_values(fn, call.func.id) if fn is not None else None
        if not bound or len(bound) != 1 or not isinstance(bound[0], ast.IfExp):
            return None
        choice = bound[0]
        a, b = _name(choice.body), _name(choice.orelse)
        if a in self.classes and b in self.classes and isinstance(choice.test, ast.Name):
            return choice.test.id, choice.test, a, b
        return None

    def _class_of(self, module: _Module, call: ast.Call, name: str) -> str:
        """The error class a call produces: itself, or what its helper constructs (a helper
        choosing between two classes by a flag: the one this call's flag picks)."""
        if name in self.classes or name == "DoorCode":
            return name
        if _is_super_init(call):
            return module.enclosing_class(call) or "?"
        chosen = self._chosen_class(module, call)
        if chosen is not None:
            return f"{chosen[2]}|{chosen[3]}"
        fn = module.functions.get(name)
        if fn is None and name in module.imports:
            path, name = module.imports[name]
            module = self.modules[path]
            fn = module.functions.get(name)
        if fn is None:
            return "?"
        for inner in ast.walk(fn):
            if not isinstance(inner, ast.Call):
                continue
            picked = self._chosen_class(module, inner)
            if picked is not None:
                flag, _test, yes, no = picked
                value = next((k.value for k in call.keywords if k.arg == flag), None)
                if value is None:
                    args = fn.args
                    defaults = dict(zip([a.arg for a in args.kwonlyargs], args.kw_defaults,
                                        strict=True))
                    value = defaults.get(flag)
                if isinstance(value, ast.Constant):
                    return yes if value.value else no
                return f"{yes}|{no}"
            inner_name = _name(inner.func)
            if inner_name and inner_name != name and (
                    inner_name in self.classes or (module.path, inner_name) in self.callees):
                return self._class_of(module, inner, inner_name)
        return "?"


def scan(package: Path = PACKAGE) -> Scan:
    return Scanner(package).scan()
