"""`windown serve`: the page for people who never open a terminal, and the shelf's podcast feed.

app (the Starlette app, and running it), routes (the pages), form (the Tonight form's fields),
builds (the build queue), templates/ and static/ (every asset the page uses; nothing from elsewhere).
"""
