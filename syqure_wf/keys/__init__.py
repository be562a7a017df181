"""The sites' keys and the handshake that turns them into a run's channel
keys: ``sitekey`` (a site's long-term key and its published DID document),
``known_sites`` (peers' keys pinned at first sight), ``handshake`` (the
contributions and the key derivation, pure), ``peerkeys`` (this party's
side of the handshake over the run folders). The transport's sealing takes
the keys from here; the sites' agent signs and checks with them."""
