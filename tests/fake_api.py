"""Strict fakes built from extracted API name lists (tests/fixtures/tensorrt/*.txt).

A fake object answers only the names its list gives its class (and the
classes it derives from): any other public name raises AttributeError, as the
real bindings would; a listed name the fake does not implement raises
NotImplementedError, so a gap in the fake is never mistaken for a passing
test. Keyword arguments are checked against the listed parameter names,
read-only properties refuse assignment, and every name used is recorded, so a
test can ask which deprecated names the code touched.
"""
import functools
from pathlib import Path

LISTS = Path(__file__).parent / "fixtures" / "tensorrt"


class ApiList:
    """One extracted list: classes and bases, members (kind, parameter names), enum values, functions, attrs."""

    def __init__(self, path):
        self.path = Path(path)
        self.classes, self.members, self.values, self.enums = {}, {}, {}, set()
        self.functions, self.attrs, self.deprecated = {}, set(), {}
        self.used = set()
        for line in self.path.read_text().splitlines():
            if not line or line.startswith("#"):
                continue
            kind, name, *rest = line.split(" ")
            if kind == "class":
                self.classes[name] = tuple(rest)
            elif kind == "enum":
                self.classes[name] = ()
                self.enums.add(name)
            elif kind == "member":
                owner, member = name.rsplit(".", 1)
                self.members.setdefault(owner, {})[member] = (rest[0], tuple(rest[1:]))
            elif kind == "value":
                scope, value = name.rsplit(".", 1) if "." in name else ("", name)
                self.values.setdefault(scope, set()).add(value)
            elif kind == "function":
                self.functions[name] = tuple(rest)
            elif kind == "attr":
                self.attrs.add(name)
            elif kind == "deprecated":
                self.deprecated[name] = " ".join(rest)

    def mro(self, cls):
        """``cls`` and its listed bases, nearest first."""
        order, todo = [], [cls]
        while todo:
            c = todo.pop(0)
            if c not in order:
                order.append(c)
                todo.extend(self.classes.get(c, ()))
        return order

    def member(self, cls, name):
        """``(owner, kind, params)`` of ``cls.name`` (inherited members too), or None."""
        for c in self.mro(cls):
            if name in self.members.get(c, {}):
                return (c,) + self.members[c][name]
            if name in self.values.get(c, ()):
                return c, "value", ()
        return None

    def use(self, qualname):
        self.used.add(qualname)

    def deprecated_used(self):
        """``{qualname: message}`` of the deprecated names used so far (``X.p=``: property ``p`` was set)."""
        return {q: m for q, m in self.deprecated.items()
                if q in self.used or (not q.endswith("=") and q + "=" in self.used)}


def checked_call(api, qualname, params, fn):
    """``fn`` with its keyword arguments checked against the listed parameter names."""
    @functools.wraps(fn)
    def call(*args, **kwargs):
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            raise TypeError(f"{qualname}() got unexpected keyword arguments {unknown} (listed: {list(params)})")
        if len(args) + len(kwargs) > max(len(params), 0) and params:
            raise TypeError(f"{qualname}() takes {len(params)} arguments, got {len(args) + len(kwargs)}")
        return fn(*args, **kwargs)
    return call


def _fake_class(cls):
    """The class in ``cls``'s MRO that stands for an API class (user subclasses sit above it)."""
    for c in cls.__mro__:
        if "_api_name" in c.__dict__:
            return c
    raise TypeError(f"{cls} is not a fake API class")


def _user_defined(cls, fake, name):
    """Whether a Python subclass of a fake (a user's IProgressMonitor, say) defines ``name`` itself."""
    for c in cls.__mro__:
        if c is fake:
            return False
        if name in c.__dict__:
            return True
    return False


class StrictMeta(type):
    """Class-level access (``trt.Logger.WARNING``) is checked and recorded like instance access."""

    def __getattribute__(cls, name):
        if name.startswith("_") or type.__getattribute__(cls, "__dict__").get("_api_name") is None:
            return type.__getattribute__(cls, name)
        api, api_name = type.__getattribute__(cls, "_api"), type.__getattribute__(cls, "_api_name")
        entry = api.member(api_name, name)
        if entry is None:
            raise AttributeError(f"type object '{api_name}' has no attribute '{name}' in TensorRT list {api.path.name}")
        api.use(f"{entry[0]}.{name}")
        return type.__getattribute__(cls, name)


class Strict(metaclass=StrictMeta):
    """Base of every fake API object. Subclasses set ``_api_name``; ``_api`` is set when a fake module is made."""

    _api = None
    _api_name = None

    def __getattribute__(self, name):
        if name.startswith("_"):
            return object.__getattribute__(self, name)
        cls = type(self)
        fake = _fake_class(cls)
        if cls is not fake and (_user_defined(cls, fake, name) or name in object.__getattribute__(self, "__dict__")):
            return object.__getattribute__(self, name)  # a Python subclass's own method or state
        api = fake._api
        entry = api.member(fake._api_name, name)
        if entry is None:
            raise AttributeError(f"'{fake._api_name}' object has no attribute '{name}' (not in {api.path.name})")
        owner, kind, params = entry
        api.use(f"{owner}.{name}")
        try:
            value = object.__getattribute__(self, name)
        except AttributeError:
            raise NotImplementedError(f"the fake does not implement {owner}.{name}") from None
        if kind in ("method", "static") and callable(value) and not _user_defined(cls, fake, name):
            return checked_call(api, f"{owner}.{name}", params, value)
        return value

    def __setattr__(self, name, value):
        if name.startswith("_"):
            return object.__setattr__(self, name, value)
        cls = type(self)
        fake = _fake_class(cls)
        entry = fake._api.member(fake._api_name, name)
        if entry is None:
            if cls is not fake:  # a Python subclass may keep its own state
                return object.__setattr__(self, name, value)
            raise AttributeError(f"'{fake._api_name}' object has no attribute '{name}' (not in {fake._api.path.name})")
        owner, kind, _ = entry
        if kind != "property":
            raise AttributeError(f"{owner}.{name} is {kind}: it cannot be set")
        fake._api.use(f"{owner}.{name}=")
        object.__setattr__(self, name, value)


class EnumValue:
    """One member of a fake enum; compares by enum and name, converts to int like pybind11's arithmetic enums."""

    def __init__(self, enum, name, value):
        self.enum, self.name, self.value = enum, name, value

    def __int__(self):
        return self.value

    __index__ = __int__

    def __eq__(self, other):
        return isinstance(other, EnumValue) and (other.enum, other.name) == (self.enum, self.name)

    def __hash__(self):
        return hash((self.enum, self.name))

    def __repr__(self):
        return f"<{self.enum}.{self.name}: {self.value}>"


class Enum:
    """A fake enum: only its listed members, each access recorded."""

    def __init__(self, api, name, members):
        self._api, self._name = api, name
        self.__members__ = {m: EnumValue(name, m, i) for i, m in enumerate(sorted(members))}

    def __getattr__(self, member):
        if member.startswith("_") or member not in self.__members__:
            raise AttributeError(f"enum '{self._name}' has no member '{member}' in {self._api.path.name}")
        self._api.use(f"{self._name}.{member}")
        return self.__members__[member]
