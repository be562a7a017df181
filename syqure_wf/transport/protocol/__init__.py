"""The protocol: pure rules, no IO (no os, asyncio, socket, time, threading:
times come in as arguments; tests/unit/test_layout.py enforces it). Each rule of
PROTOCOL.md lives in the module named after it:

``framing``     a TCP stream cut into messages
``ports``       which port each channel uses, and who listens
``names``       names on disk: directions, message files, stamps, markers, records
                (read with ``syqure_wf/files/peer_json.py``, the one reader of peer JSON)
``judge``       the one message judge: deliver, wait or corrupt, for every layout
``inbound``     delivery order: next seq, holes, stalls, the writer's proof
``outbound``    sequence allocation, resume, what was consumed and may be reaped
``liveness``    a peer's heartbeat (PeerWatch), this site's sync (SyncWatch)
``completion``  when a proxy is done: linger (standalone) or drain (party runner)
``defaults``    the transport's default sizes and bounds, one table
"""
