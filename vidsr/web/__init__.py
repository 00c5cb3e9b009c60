"""``vidsr serve``: the web platform (a page and the HTTP API it shares with scripts) over vidsr's own jobs."""
