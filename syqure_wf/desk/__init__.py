"""``syqure-wf desk``: the data steward's page. A small WSGI app (Werkzeug)
on 127.0.0.1 behind an access token, with Jinja2 templates that escape by
default and Pygments for program source. It reads what ``runs``, ``show``
and the audit log read, and asks the agent with ``approve``/``reject``'s
own request (sites/operator.py), bound to the manifest version on screen."""
