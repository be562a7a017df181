"""What an MPyC party's ``pickle.loads`` builds: instances, from data, of
bounded size (issue 33). unpickle.py decides which names a pickle may
look up; this file decides what a name builds.

A name the list allows is handed out as a stand-in, never as the class or
function itself. A class is only instantiated (NEWOBJ) through a sealed
stand-in that takes no attribute and builds nothing once its load is over;
a BUILD on anything but an instance is refused, so no pickle sets an
attribute process-wide, and no class or function is what a load returns.
A value made from a count (``bytearray(N)``, ``set(range(N))``, a
Fraction's exponent, a field's modulus, an array's shape) is refused, so a
few bytes never become gigabytes; each party's memory limit (run/party.py)
bounds what remains (a large memo index). Stdlib only, and no import of
syqure_wf: the launcher runs by path.
"""
from __future__ import annotations

import io
import pickle
import re
import sys

MAX_BITS = 1 << 14  # a field modulus (or extension degree) a peer may name at most
MAX_TEXT = 4300  # digits of a Fraction's numerator or denominator (Python's own int limit)


class Refused(pickle.UnpicklingError):
    """What a peer's pickle asked for that no safe constructor builds."""


def names(module: str, name: str) -> str:
    """Why a name outside the allow-list is refused, as a refusal line says it."""
    return f"names {module}.{name}, which is neither plain data nor an MPyC type"


class _Maker:
    """A safe constructor: what ``find_class`` hands out instead of a
    class or a function. No attribute can be set on it (BUILD refused)."""
    __slots__ = ("name", "make")

    def __init__(self, name: str, make) -> None:
        self.name, self.make = name, make

    def __call__(self, *args):
        return self.make(*args)

    def __setstate__(self, state):
        raise Refused(f"asks for a BUILD on {self.name}, which is no instance")

    def __reduce__(self):
        raise TypeError(f"{self.name}: a stand-in of unpickling, not data")


class _Sealed(type):
    """The type of a class's stand-in: NEWOBJ needs a type, and gets one
    that builds the real class's instance, takes no attribute, and builds
    nothing once its load is over."""

    def __setattr__(cls, name, value):
        raise Refused(f"asks for a BUILD on the class {cls.__name__}")

    def __delattr__(cls, name):
        raise Refused(f"asks for a BUILD on the class {cls.__name__}")


def _stand_in(real: type, alive: list) -> type:
    def __new__(cls, *args, **kwargs):
        if args or kwargs or not alive[0]:
            raise Refused(f"asks for {real.__qualname__} built from arguments, or outside its load")
        return real.__new__(real)

    def __setstate__(*args):
        raise Refused(f"asks for a BUILD on the class {real.__qualname__}")
    return _Sealed(real.__name__, (), {"__new__": __new__, "__slots__": (),
                                       "__setstate__": staticmethod(__setstate__)})


def _no_count(kind, arg=b"", *rest):
    """bytearray/set/frozenset of what a pickler writes (bytes, a list),
    never of a count or a range: the bombs."""
    if isinstance(arg, (int, range)) or not isinstance(arg, (bytes, bytearray, str, list, tuple)):
        raise Refused(f"asks for {kind.__name__}({type(arg).__name__}): a count, not data")
    return kind(arg, *rest)


_FRACTION = re.compile(r"-?[0-9]{1,%d}(/[0-9]{1,%d})?" % (MAX_TEXT, MAX_TEXT))


def _fraction(*args):
    from fractions import Fraction

    if len(args) == 1 and isinstance(args[0], str) and _FRACTION.fullmatch(args[0]):
        return Fraction(args[0])  # no exponent: '1e999999999' would compute 10**999999999
    if 1 <= len(args) <= 2 and all(type(a) is int for a in args):
        return Fraction(*args)
    raise Refused("asks for a Fraction of something other than digits")


def _small_int(*values) -> None:
    for v in values:
        if not isinstance(v, int) or isinstance(v, bool) or v.bit_length() > MAX_BITS:
            raise Refused(f"asks for a field parameter that is not an int of at most {MAX_BITS} bits")


def _prime_field(p, n, w):
    from mpyc.finfields import PrimeFieldElement

    _small_int(p, n, w)
    return PrimeFieldElement.createGF(p, n, w)


def _extension_field(modulus):
    from mpyc import gfpx
    from mpyc.finfields import ExtensionFieldElement

    if not isinstance(modulus, gfpx.Polynomial) or not 0 < modulus.degree() <= MAX_BITS:
        raise Refused(f"asks for an extension field whose modulus is no polynomial of degree at most {MAX_BITS}")
    return ExtensionFieldElement.createGF(modulus)


_ND = object()  # numpy.ndarray, as _reconstruct's first argument only


def _reconstruct(core: str):
    def make(subtype, shape, dtype):
        real = sys.modules[core]._reconstruct
        if subtype is not _ND or not isinstance(shape, tuple) or len(shape) != 1 or shape[0] not in (0, 1):
            raise Refused("asks for an array made other than as NumPy pickles one (ndarray, shape (0,))")
        import numpy

        return real(numpy.ndarray, shape, dtype)
    return make


def _dtype(spec, *flags):
    import numpy

    if not isinstance(spec, str) or len(spec) > 64:
        raise Refused("asks for a NumPy dtype named other than by a short string")
    return numpy.dtype(spec, *flags)


def _safe(module: str, name: str):
    """The stand-in ``find_class`` returns for an allowed name (None: the thing itself, a function
    that builds from data only)."""
    return {
        ("builtins", "bytearray"): lambda *a: _no_count(bytearray, *a),
        ("builtins", "set"): lambda *a: _no_count(set, *a),
        ("builtins", "frozenset"): lambda *a: _no_count(frozenset, *a),
        ("fractions", "Fraction"): _fraction,
        ("builtins", "complex"): complex, ("builtins", "slice"): slice,
        ("builtins", "range"): range,  # lazy: only what is built from it counts (set, bytearray above)
        ("numpy", "dtype"): _dtype,
        ("mpyc.finfields", "PrimeFieldElement.createGF"): _prime_field,
        ("mpyc.finfields", "ExtensionFieldElement.createGF"): _extension_field,
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct("numpy.core.multiarray"),
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct("numpy._core.multiarray"),
    }.get((module, name))


class SafeUnpickler(pickle.Unpickler):
    """MPyC's messages through safe constructors (the C unpickler, stand-ins
    from ``find_class``): Refused for anything else. ``allowed(module,
    name)``: the allow-list (unpickle.py)."""

    def __init__(self, file, allowed, **kwargs) -> None:
        super().__init__(file, **kwargs)
        self._allowed = allowed
        self._alive = [True]
        self._stand_ins: dict = {}

    @classmethod
    def loads(cls, data, allowed, /, **kwargs):
        """``pickle.loads`` through safe constructors."""
        return cls(io.BytesIO(data), allowed, **kwargs).load()

    def find_class(self, module: str, name: str):
        if not self._allowed(module, name):
            raise Refused(names(module, name))
        if (module, name) == ("numpy", "ndarray"):
            return _ND
        make = _safe(module, name)
        if make is not None:
            return _Maker(f"{module}.{name}", make)
        try:
            __import__(module)
            value = sys.modules[module]
            for part in name.split("."):
                value = getattr(value, part)
        except (ImportError, AttributeError):
            raise Refused(f"names {module}.{name}, which this party does not have") from None
        if isinstance(value, type):
            if value not in self._stand_ins:
                self._stand_ins[value] = _stand_in(value, self._alive)
            return self._stand_ins[value]
        return _Maker(f"{module}.{name}", value)  # a function that builds from data (from_binary, scalar...)

    def load(self):
        try:
            value = super().load()
        finally:
            self._alive[0] = False
        if isinstance(value, (type, _Maker)) or value is _ND:
            raise Refused(f"is a class or function ({getattr(value, '__name__', None) or 'numpy.ndarray'}), not data")
        return value
