"""The GitLab adapter, over python-gitlab: the only code that talks to GitLab.

One module per GitLab resource, each a small class over one shared `Connection` (python-gitlab's own
`gitlab/v4/objects/` is cut the same way); `tracker.GitLabTracker` composes them into the `bot.tracker.Tracker`
the processor sees. Thin on purpose: it fetches and writes, and `bot.evidence` and the processor decide. Every
call is counted, GitLab errors become TrackerError with a message fit for a person (never the token), and POSTs
are never retried blindly: a note or an issue is created again only after checking that the first try left nothing.
"""
