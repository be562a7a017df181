"""Peer pickles build instances only, of bounded size (issue 33): what an
MPyC party's pickle.loads builds goes through safe constructors
(engines/safepickle.py). A pickle that names an allowed class and then
BUILDs on it, returns it, or turns a count into gigabytes is refused; what
MPyC really pickles loads as before; the memory limit that bounds what
remains. The real three-party transfers: tests/system/test_confine.py."""
from __future__ import annotations

import pickle
import struct

import pytest

from syqure_wf.engines import unpickle
from syqure_wf.engines.safepickle import Refused, SafeUnpickler


def loads(data: bytes):
    return SafeUnpickler.loads(data, unpickle.allowed)


def glob(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def call1(module: str, name: str, arg: bytes) -> bytes:
    """module.name(arg) as pickle opcodes (arg: opcodes pushing one value)."""
    return b"\x80\x02" + glob(module, name) + arg + b"\x85R."


def uint(n: int) -> bytes:
    return b"\x8a" + bytes([8]) + n.to_bytes(8, "little")  # LONG1


def build_on(module: str, name: str, attribute: str) -> bytes:
    """GLOBAL module.name, then BUILD (None, {attribute: 1}) on it: setattr on whatever it is."""
    key = attribute.encode()
    return (b"\x80\x02" + glob(module, name) + b"N}X" + struct.pack("<I", len(key)) + key + b"K\x01s\x86b.")


@pytest.fixture(scope="module")
def field():
    from mpyc.runtime import mpc

    return mpc.SecFld(101).field


def test_what_mpyc_sends_loads_as_before(field):
    import numpy as np
    from mpyc.runtime import mpc

    prime, binary = mpc.SecFld(2**61 - 1).field, mpc.SecFld(2**8).field
    group = mpc.SecEllipticCurve("Ed25519", "projective").group
    sent = [3, -2**200, 1.5, "text", b"bytes", None, [1, (2, 3)], {"a": {1, 2}}, frozenset({1}), 1 + 2j,
            bytearray(b"x"), range(3), slice(1, 5), prime(5), binary(7), np.array([1, 2**70], dtype=object),
            np.arange(4), np.int64(3), mpc.SecInt(32).field(9), __import__("fractions").Fraction(-3, 7)]
    for obj in sent:
        for protocol in (4, 5):
            got = loads(pickle.dumps(obj, protocol=protocol))
            assert type(got) is type(obj) and repr(got) == repr(obj), (obj, protocol)
    for array in (prime.array(np.array([1, 2, 3])), binary.array(np.array([1, 2]))):
        got = loads(pickle.dumps(array))
        assert type(got) is type(array) and (got.value == array.value).all()
    for element in (group.identity, group.generator):
        assert loads(pickle.dumps(element)) == element
    assert int(loads(pickle.dumps(field(5)))) == 5


def test_a_pickle_that_builds_on_a_class_sets_nothing(field):
    """A peer's pickle named ArrayGF(101) and BUILT on it: an attribute on
    the receiver's class, process-wide (with the base classes, int(F(5))
    raised). Now refused, and the class has no new attribute."""
    array = type(field.array([1]))
    for module, name in [("mpyc.finfields", array.__name__), ("mpyc.finfields", "PrimeFieldElement"),
                         ("mpyc.finfields", "FiniteFieldArray"), ("mpyc.gfpx", "Polynomial"),
                         ("fractions", "Fraction"), ("mpyc.finfields", "PrimeFieldElement.createGF")]:
        with pytest.raises(Refused):
            loads(build_on(module, name, "planted"))
    assert not hasattr(array, "planted") and not hasattr(__import__("fractions").Fraction, "planted")
    assert int(field(5)) == 5


def test_a_class_or_function_is_never_what_a_load_returns(field):
    array = type(field.array([1]))
    for data in (pickle.dumps(array), pickle.dumps(__import__("fractions").Fraction),
                 b"\x80\x02" + glob("numpy", "ndarray") + b".", b"\x80\x02" + glob("numpy._core.multiarray", "scalar") + b"."):
        with pytest.raises(Refused, match="class or function"):
            loads(data)
    # NEWOBJ on a class that asked for arguments, or on a base: refused
    with pytest.raises(Refused):
        loads(b"\x80\x02" + glob("mpyc.finfields", array.__name__) + b"K\x01\x85\x81.")


@pytest.mark.parametrize("data", [
    call1("builtins", "bytearray", uint(1 << 26)),  # 13 bytes -> 64 MiB (1 << 40: a terabyte)
    call1("builtins", "set", glob("builtins", "range") + uint(1 << 26) + b"\x85R"),
    call1("builtins", "frozenset", glob("builtins", "range") + uint(1 << 26) + b"\x85R"),
    call1("builtins", "bytearray", glob("builtins", "range") + uint(1 << 26) + b"\x85R"),
    call1("fractions", "Fraction", b"X" + struct.pack("<I", 11) + b"1e999999999"),  # 10**999999999
    b"\x80\x02" + glob("numpy._core.multiarray", "_reconstruct") + glob("numpy", "ndarray")
    + uint(1 << 34) + b"\x85C\x01b\x87R.",  # an empty array of 16 GiB
    b"\x80\x02" + glob("mpyc.finfields", "PrimeFieldElement.createGF") + b"(\x8b" + struct.pack("<i", 1 << 16)
    + b"\x01" * (1 << 16) + b"K\x02K\x01tR.",  # a 512-kbit "prime": a primality test for minutes
], ids=["bytearray(N)", "set(range(N))", "frozenset(range(N))", "bytearray(range(N))", "Fraction('1e999999999')",
        "ndarray of shape (2**34,)", "field of a huge modulus"])
def test_a_few_bytes_never_become_gigabytes(data):
    assert len(data) < 70_000
    with pytest.raises(Refused, match="asks for"):
        loads(data)


def test_the_memory_limit_is_a_size_with_a_default():
    from syqure_wf.errors import ConfigError
    from syqure_wf.run import limits

    assert limits.parse("4G") == 4 << 30 and limits.parse("512 MiB") == 512 << 20 and limits.parse(0) == 0
    assert limits.parse(None) == limits.default() >= limits.FLOOR
    assert limits.shown(4 << 30) == "4 GiB" and limits.shown(0) == "no limit"
    for bad in ("lots", "-1G", True, 1.5):
        with pytest.raises(ConfigError, match="no size"):
            limits.parse(bad)
