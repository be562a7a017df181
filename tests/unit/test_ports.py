import pytest

from syqure_wf.transport.protocol.ports import Role, channel_offset, mpyc_party_args, plan_channels, ports_used


def test_seed_table_for_three_parties():
    # PROTOCOL.md: CP0 listens 8001, 8002; CP1 listens 9003, connects 9001; CP2 connects 10002, 10003.
    plans = {p: plan_channels(p, 3, 1000 * (p + 8), 1000 * (p + 8)) for p in range(3)}
    assert [(c.peer, c.role, c.port) for c in plans[0]] == [(1, Role.DIAL, 8001), (2, Role.DIAL, 8002)]
    assert [(c.peer, c.role, c.port) for c in plans[1]] == [(0, Role.ACCEPT, 9001), (2, Role.DIAL, 9003)]
    assert [(c.peer, c.role, c.port) for c in plans[2]] == [(0, Role.ACCEPT, 10002), (1, Role.ACCEPT, 10003)]


@pytest.mark.parametrize("n", [2, 3, 4, 7])
def test_offsets_are_distinct_and_symmetric(n):
    offs = {channel_offset(a, b, n) for a in range(n) for b in range(a + 1, n)}
    assert len(offs) == n * (n - 1) // 2 and min(offs) == 1
    assert all(channel_offset(a, b, n) == channel_offset(b, a, n) for a in range(n) for b in range(n) if a != b)


@pytest.mark.parametrize("convention", ["sequre", "mpyc"])
def test_each_channel_has_one_listener_and_one_dialer(convention):
    n = 5
    for a in range(n):
        for b in range(a + 1, n):
            ra = next(c.role for c in plan_channels(a, n, 0, 0, convention) if c.peer == b)
            rb = next(c.role for c in plan_channels(b, n, 0, 0, convention) if c.peer == a)
            # the proxy dials where its party listens: exactly one party listens
            assert {ra, rb} == {Role.DIAL, Role.ACCEPT}


def test_mpyc_higher_party_listens_on_one_port():
    plans = plan_channels(2, 3, 20200, 12367, "mpyc")
    assert all(c.role is Role.DIAL and c.port == 12367 for c in plans)
    assert ports_used(0, 3, 20000, 12365, "mpyc") == {"proxy": {20001, 20002}, "party": set()}


def test_mpyc_args_reach_the_proxy():
    # its own entry names its host: the launcher binds MPyC's listener there, not on every interface
    assert mpyc_party_args(1, 3, 20100, 12366) == [
        "-P", "127.0.0.1:12366", "-P", "127.0.0.1:12366", "-P", "127.0.0.1:20103", "-I", "1"]


def test_dial_party_listens_on_nothing():
    # the party dials its proxy on every channel, lower peers' included
    assert all(c.role is Role.ACCEPT for p in range(3) for c in plan_channels(p, 3, 20000, 12365, "dial"))
    assert ports_used(2, 3, 20200, 12367, "dial") == {"proxy": {20202, 20203}, "party": set()}
    assert mpyc_party_args(1, 3, 20100, 12366, convention="dial") == [
        "-P", "127.0.0.1:20101", "-P", "127.0.0.1:12366", "-P", "127.0.0.1:20103", "-I", "1"]


@pytest.mark.parametrize("pid,n", [(0, 1), (3, 3), (-1, 3)])
def test_bad_parties_refused(pid, n):
    with pytest.raises(ValueError):
        plan_channels(pid, n, 8000, 8000)
