"""Files on this machine that nobody else may change or that anybody may
have written: ``private`` (this user's own files, 0600 in 0700 folders,
never through a link), ``peer_json`` (the one reader of JSON a peer or a
sync wrote), ``syftbox_client`` (which SyftBox client syncs a folder).
Below every other package: the transport, the keys, the runner and the
sites all keep and read their files here."""
