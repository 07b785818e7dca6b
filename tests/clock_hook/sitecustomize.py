"""Test-only, for the bot run as a real process (tests/test_reminders.py puts this directory on PYTHONPATH):

- LB_TEST_SHIFT_DAYS=N: the bot's day (`Context.today`) is N days ahead, so a license made today is near its
  end without waiting for it;
- LB_TEST_KILL_AT=N with LB_TEST_GITLAB_URL: the process SIGKILLs itself just before its Nth call to GitLab
  leaves, so a test can stop a run at each exact API call (calls before it landed, it and later ones did not).
"""

import os

if os.environ.get("LB_TEST_SHIFT_DAYS"):
    from datetime import timedelta

    import bot.context

    _shift = timedelta(days=int(os.environ["LB_TEST_SHIFT_DAYS"]))
    # Only the day moves: `now` stays GitLab's time, so the run lock's age and other timestamps compare truly.
    bot.context.Context.today = property(lambda self: self.now.date() + _shift)

if os.environ.get("LB_TEST_KILL_AT"):
    import signal

    import requests

    _at, _url, _seen = int(os.environ["LB_TEST_KILL_AT"]), os.environ["LB_TEST_GITLAB_URL"], [0]
    _send = requests.Session.send

    def _send_or_die(self, request, **kwargs):
        if request.url.startswith(_url):
            _seen[0] += 1
            if _seen[0] == _at:
                os.kill(os.getpid(), signal.SIGKILL)
        return _send(self, request, **kwargs)

    requests.Session.send = _send_or_die
