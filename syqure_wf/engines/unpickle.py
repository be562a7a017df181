"""What an MPyC party may unpickle: plain data and MPyC's own types.

MPyC 0.11 hands what its peers send to ``pickle.loads`` (``mpc.transfer``,
secure NumPy arrays), and a pickle may name any callable: a peer's message
could run code here. Every MPyC party syqure-wf starts runs this file as
its launcher (by path, before anything else of the party's process):

- an audit hook judges every global any unpickler of the process looks up
  (``pickle.find_class``, the C and the Python unpickler alike) against the
  allow-list below; a hook cannot be removed once added;
- a global outside it ends the party at once (exit ``REFUSED``) with one
  line naming the peer whose message named it: MPyC's received messages
  are tagged with their sender, and MPyC itself is not modified;
- then the program runs as ``__main__``, as ``python PROGRAM ARGS`` would.

The allow-list is what MPyC 0.11 pickles across parties, found by running
its demos (three and more parties, ``--no-prss``, ``--mix32-64bit``) with
every lookup logged: NumPy arrays and dtypes (shares of secure arrays),
finite-field elements and arrays, group elements and polynomials (MPyC's
own classes, made at run time and registered in their modules), gmpy2
numbers, and the few builtins that plain values pickle to. Stdlib only.
"""
from __future__ import annotations

import os
import pickle
import sys

REFUSED = 77  # exit code of a party that refused a message (EX_NOPERM)
PREFIX = "syqure-wf: refused"  # how the refusal line starts (the runner looks for it)

# (module, name) pairs any party may look up
PLAIN = frozenset({
    # values of plain data that have no opcode of their own
    ("builtins", "complex"), ("builtins", "bytearray"), ("builtins", "set"), ("builtins", "frozenset"),
    ("builtins", "range"), ("builtins", "slice"), ("fractions", "Fraction"),
    # NumPy arrays, dtypes and scalars (NumPy 1 names its core numpy.core, NumPy 2 numpy._core)
    ("numpy", "ndarray"), ("numpy", "dtype"),
    *((core, name) for core in ("numpy.core.multiarray", "numpy._core.multiarray")
      for name in ("_reconstruct", "scalar")),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),  # pickle protocol 5
    # gmpy2 numbers a program transfers (gmpy2 2.1 and 2.2+ name their module differently)
    ("gmpy2", "from_binary"), ("gmpy2.gmpy2", "from_binary"),
    # finite-field elements rebuild their field
    ("mpyc.finfields", "PrimeFieldElement.createGF"), ("mpyc.finfields", "ExtensionFieldElement.createGF"),
})

# MPyC makes its field, array, group and polynomial classes at run time and
# registers each in its module under a made-up name (``ArrayGF(p)``,
# ``E(GF(p))secp256k1projective``...): any class there of these kinds.
MPYC_KINDS = {
    "mpyc.finfields": ("FiniteFieldElement", "FiniteFieldArray"),
    "mpyc.fingroups": ("FiniteGroupElement",),
    "mpyc.gfpx": ("Polynomial",),
}


def allowed(module: str, name: str, modules=None) -> bool:
    """May an unpickler look up ``module.name``? ``modules`` (default
    ``sys.modules``) holds the modules already imported: an MPyC class is
    judged by what it is, and nothing is imported to judge it."""
    if (module, name) in PLAIN:
        return True
    kinds = MPYC_KINDS.get(module)
    if kinds is None or "." in name or name.startswith("_"):
        return False
    mod = (sys.modules if modules is None else modules).get(module)
    if mod is None:
        return False
    value = mod.__dict__.get(name)
    bases = tuple(b for b in (mod.__dict__.get(k) for k in kinds) if isinstance(b, type))
    return isinstance(value, type) and bool(bases) and issubclass(value, bases)


class Received(bytes):
    """A message's bytes, and the peer that sent them."""

    def __new__(cls, data, sender: int):
        obj = super().__new__(cls, data)
        obj.sender = sender
        return obj


def refusal(module: str, name: str, sender, me) -> str:
    """The line a refusal prints (and its runner records)."""
    what = f"{module}.{name}, which is neither plain data nor an MPyC type"
    if sender is None or sender == me:  # not a peer's message: the program's own pickle
        return f"{PREFIX} to unpickle its own data: it names {what}"
    return f"{PREFIX} a message from party {sender}: its pickle names {what}"


_senders: list = []  # the sender of each message being unpickled, innermost last
_me: list = [None]


def _hook(event: str, args: tuple) -> None:
    if event == "pickle.find_class" and not allowed(*args):
        line = refusal(str(args[0]), str(args[1]), _senders[-1] if _senders else None, _me[0])
        try:
            os.write(2, (line + "\n").encode(errors="replace"))
        finally:
            os._exit(REFUSED)  # at once: an exception could be swallowed by the program's tasks


def install() -> None:
    """The hook, and ``pickle.loads`` telling it whose message it reads."""
    loads = pickle.loads

    def tracked_loads(data, /, *args, **kwargs):
        _senders.append(getattr(data, "sender", None))
        try:
            return loads(data, *args, **kwargs)
        finally:
            _senders.pop()

    pickle.loads = tracked_loads
    sys.addaudithook(_hook)


def tag_senders(runtime) -> None:
    """Tag what MPyC's runtime receives with the sending party (in memory,
    one method wrapped; if MPyC changes shape the guard still holds and the
    refusal just says 'a peer')."""
    cls = type(runtime)
    receive = getattr(cls, "_receive_message", None)
    if receive is None:
        return
    _me[0] = getattr(runtime, "pid", None)
    import asyncio

    def _receive_message(self, peer_pid):
        got = receive(self, peer_pid)
        if not isinstance(got, asyncio.Future):
            return Received(got, peer_pid)
        tagged = got.get_loop().create_future()

        def done(f):
            if tagged.done():
                return
            if f.cancelled():
                tagged.cancel()
            elif f.exception() is not None:
                tagged.set_exception(f.exception())
            else:
                tagged.set_result(Received(f.result(), peer_pid))
        got.add_done_callback(done)
        return tagged

    cls._receive_message = _receive_message


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit("usage: unpickle.py PROGRAM [ARGS...]")
    program = os.path.abspath(argv[0])
    sys.argv = list(argv)
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0] or ".") == here:  # as 'python PROGRAM' has it, not ours
        sys.path[0] = os.path.dirname(program)
    else:
        sys.path.insert(0, os.path.dirname(program))
    install()
    transport = _transport()
    from mpyc.runtime import mpc  # reads (and takes out) MPyC's options from sys.argv, as the program would

    tag_senders(mpc)
    if transport is not None:
        from syqure_wf.engines.mpyc_inproc import attach

        attach(mpc, transport.side)
    import runpy

    try:
        runpy.run_path(program, run_name="__main__")
    except SystemExit as done:
        if transport is None or done.code not in (None, 0):
            if transport is not None:
                transport.abandon()
            raise
    except BaseException:
        if transport is not None:
            transport.abandon()
        raise
    if transport is not None:
        transport.finish()  # the program is done: what it sent is delivered and consumed


def _transport():
    """The file transport in this process, when the runner asked for it
    (``engines/mpyc_inproc.py``): the one part of the launcher that is not stdlib."""
    if "SYQURE_WF_TRANSPORT_FD" not in os.environ:
        return None
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.path.insert(0, root)  # the package this launcher is part of, for this one import
    try:
        from syqure_wf.engines.mpyc_inproc import start
    finally:
        sys.path.remove(root)
    return start()


if __name__ == "__main__":
    main(sys.argv[1:])
