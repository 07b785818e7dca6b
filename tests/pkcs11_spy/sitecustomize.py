"""A thin wrapper around python-pkcs11 for the SoftHSM tests, loaded into the bot's process through PYTHONPATH.

It counts what SoftHSM cannot show and simulates what SoftHSM cannot produce; the token, the PIN check and the
signatures stay SoftHSM's own:
- PKCS11_SPY_LOG: a file that gets a line `login` for each C_Login with a user PIN;
- PKCS11_SPY_FLAGS: token flags to add to the token's own (SoftHSM never sets CKF_USER_PIN_COUNT_LOW,
  CKF_USER_PIN_FINAL_TRY or CKF_USER_PIN_LOCKED: it does not lock);
- PKCS11_SPY_REMOVE_AFTER: remove the token's directory (PKCS11_SPY_TOKEN_DIR) after this many signatures, as a
  token pulled out between two requests.
"""

from __future__ import annotations

import os
import shutil

import pkcs11
from pkcs11 import TokenFlag

_real_lib = pkcs11.lib
_signs = [0]


class _Key:
    def __init__(self, key):
        self._key = key

    def __getitem__(self, item):
        return self._key[item]

    def sign(self, data, **kwargs):
        result = self._key.sign(data, **kwargs)
        _signs[0] += 1
        if _signs[0] == int(os.environ.get("PKCS11_SPY_REMOVE_AFTER") or 0):
            shutil.rmtree(os.environ["PKCS11_SPY_TOKEN_DIR"])
        return result


class _Session:
    def __init__(self, session):
        self._session = session

    def get_key(self, **kwargs):
        return _Key(self._session.get_key(**kwargs))

    def __getattr__(self, name):
        return getattr(self._session, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._session.close()


class _Token:
    def __init__(self, token):
        self._token = token

    @property
    def flags(self):
        extra = TokenFlag(0)
        for name in filter(None, (os.environ.get("PKCS11_SPY_FLAGS") or "").split(",")):
            extra |= TokenFlag[name]
        return self._token.flags | extra

    def open(self, **kwargs):
        if kwargs.get("user_pin") is not None and os.environ.get("PKCS11_SPY_LOG"):
            with open(os.environ["PKCS11_SPY_LOG"], "a") as log:
                log.write("login\n")
        return _Session(self._token.open(**kwargs))

    def __getattr__(self, name):
        return getattr(self._token, name)


class _Lib:
    def __init__(self, module):
        self._lib = _real_lib(module)

    def get_token(self, **kwargs):
        return _Token(self._lib.get_token(**kwargs))

    def __getattr__(self, name):
        return getattr(self._lib, name)


pkcs11.lib = _Lib
