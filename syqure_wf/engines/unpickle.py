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

What ``pickle.loads`` returns is built through safe constructors
(safepickle.py): instances only, from data, of bounded size.
"""
from __future__ import annotations

import os
import pickle
import sys

try:
    from .safepickle import Refused, SafeUnpickler, names
except ImportError:  # run by path, as every MPyC party's launcher: its folder is first on sys.path
    from safepickle import Refused, SafeUnpickler, names

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


# the bases MPyC's run-time classes derive from: never what a peer builds
ABSTRACT = frozenset({"FiniteFieldElement", "FiniteFieldArray", "PrimeFieldElement", "ExtensionFieldElement",
                      "BinaryFieldElement", "PrimeFieldArray", "ExtensionFieldArray", "BinaryFieldArray",
                      "FiniteGroupElement", "Polynomial"})


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
    # a class made at run time (a field, an array, a group, polynomials over a field), not a base of them
    return isinstance(value, type) and bool(bases) and issubclass(value, bases) and name not in ABSTRACT


class Received(bytes):
    """A message's bytes, and the peer that sent them."""

    def __new__(cls, data, sender: int):
        obj = super().__new__(cls, data)
        obj.sender = sender
        return obj


def refusal(module: str, name: str, sender, me) -> str:
    """The line a refusal prints (and its runner records)."""
    return f"{PREFIX} {_line(names(module, name), sender, me)}"


def _line(what: str, sender, me) -> str:
    if sender is None or sender == me:  # not a peer's message: the program's own pickle
        return f"to unpickle its own data: it {what}"
    return f"a message from party {sender}: its pickle {what}"


_senders: list = []  # the sender of each message being unpickled, innermost last
_me: list = [None]


def _refuse(line: str) -> None:
    try:
        os.write(2, (f"{PREFIX} {line}\n").encode(errors="replace"))
    finally:
        os._exit(REFUSED)  # at once: an exception could be swallowed by the program's tasks


def _hook(event: str, args: tuple) -> None:
    if event == "pickle.find_class" and not allowed(*args):
        _refuse(_line(names(str(args[0]), str(args[1])), _senders[-1] if _senders else None, _me[0]))


def install() -> None:
    """The hook, and ``pickle.loads`` telling it whose message it reads
    (and building through safe constructors)."""
    def tracked_loads(data, /, **kwargs):
        _senders.append(getattr(data, "sender", None))
        try:
            return SafeUnpickler.loads(data, allowed, **kwargs)
        except (Refused, MemoryError) as exc:
            what = str(exc) if isinstance(exc, Refused) else "asks for more memory than this party may take"
            _refuse(_line(what, _senders[-1], _me[0]))
        except Exception as exc:  # a peer's malformed pickle: named, not a traceback deep in MPyC
            if _senders[-1] is None or _senders[-1] == _me[0]:
                raise  # the program's own data: its own to handle
            _refuse(_line(f"is malformed ({type(exc).__name__}: {str(exc)[:200]})", _senders[-1], _me[0]))
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


DIAL = "SYQURE_WF_MPYC_DIAL"  # "1": the party dials its proxy where MPyC would listen


class _NoServer:
    def close(self) -> None:
        pass


def local_hop(runtime) -> None:
    """MPyC binds its listener without a host, on every interface. Here it
    binds its own ``-P`` entry's host (loopback); with ``DIAL`` set (a party
    behind its proxy, convention ``dial``) it listens on nothing and dials
    each lower peer's ``-P`` entry, its proxy's port for that channel, where
    the proxy proves the connection is this process's (PROTOCOL.md)."""
    cls = type(runtime)
    start = getattr(cls, "start", None)
    if start is None:
        return
    import asyncio
    import socket

    async def dial_lower(rt, loop, factory, ssl=None):
        for peer in rt.parties[:rt.pid]:
            while True:  # as MPyC retries its own dials
                sock = socket.socket(socket.AF_INET6 if ":" in peer.host else socket.AF_INET)
                sock.setblocking(False)
                try:
                    await loop.sock_connect(sock, (peer.host, peer.port))
                    break
                except OSError:
                    sock.close()
                    await asyncio.sleep(0.1)
            await loop.connect_accepted_socket(factory, sock, ssl=ssl)  # MPyC's server side, TLS too
        return _NoServer()

    async def start_local(self):
        loop = self._loop
        create_server = loop.create_server

        async def server(factory, host=None, port=None, **kw):
            if os.environ.get(DIAL) == "1":
                return await dial_lower(self, loop, factory, kw.get("ssl"))
            return await create_server(factory, host or self.parties[self.pid].host, port, **kw)

        loop.create_server = server
        try:
            return await start(self)
        finally:
            del loop.create_server

    cls.start = start_local


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
    if transport is not None:  # in process: MPyC's connections are the transport's own, nothing listens
        from syqure_wf.engines.mpyc_inproc import attach

        attach(mpc, transport.side)
    else:
        local_hop(mpc)
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
