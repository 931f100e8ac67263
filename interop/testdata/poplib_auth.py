"""One POP3 session that logs in with a hand-made AUTH (RFC 5034) through
Python's poplib, for the interop tests. poplib has no AUTH of its own, so
the exchange is driven with its internal helpers: _shortcmd for a command
answered by one line, _putcmd/_putline to send, _getresp to read one
response line (it raises error_proto for anything but "+...").

Usage: python3 poplib_auth.py SPEC_JSON

SPEC_JSON is an object with:
  host, port   the server
  mode         "plain", "stls" (POP3.stls) or "ssl" (POP3_SSL)
  cafile       CA file to verify the server certificate with
  user, password
  token        an OAuth bearer token (login "xoauth2")
  login        "plain-ir":  AUTH PLAIN with the initial response
               "plain":     AUTH PLAIN, then the response after "+ "
               "login":     AUTH LOGIN, user name and password as
                            answers to the two challenges
               "cram-md5":  AUTH CRAM-MD5, answered with the HMAC-MD5
                            of the challenge (RFC 2195)
               "xoauth2":   AUTH XOAUTH2 with the initial response
  probes       before logging in, also try what must fail: AUTH PLAIN
               with "=" (an empty initial response), AUTH LOGIN
               cancelled with "*", and the bare AUTH listing
  outdir       directory for the retrieved message 1 (1.eml)

It prints a JSON object with what the server answered.
"""

import base64
import hmac
import json
import os
import poplib
import ssl
import sys


def text(b):
    return b.decode("latin-1")


def b64(s):
    return base64.b64encode(s.encode("utf-8")).decode("ascii")


def unb64(resp):
    """The decoded challenge of a "+ base64" line."""
    if not resp.startswith(b"+ "):
        raise ValueError("not a continuation: %r" % resp)
    return text(base64.b64decode(resp[2:], validate=True))


def failure(f):
    """Runs f, which must fail with -ERR; returns the -ERR line."""
    try:
        resp = f()
    except poplib.error_proto as e:
        return text(e.args[0])
    raise AssertionError("succeeded: %r" % (resp,))


def sasl_line(pop):
    caps = pop.capa()
    return caps.get("SASL", [])


def main():
    spec = json.loads(sys.argv[1])
    timeout = 30
    context = ssl.create_default_context(cafile=spec["cafile"])
    if spec["mode"] == "ssl":
        pop = poplib.POP3_SSL(spec["host"], spec["port"], timeout=timeout, context=context)
    else:
        pop = poplib.POP3(spec["host"], spec["port"], timeout=timeout)
    out = {}
    out["sasl_before"] = sasl_line(pop)
    if spec["mode"] == "stls":
        pop.stls(context=context)
        out["sasl_tls"] = sasl_line(pop)

    user, password = spec["user"], spec["password"]
    if spec.get("probes"):
        # Old Outlook's probe: a bare AUTH lists the mechanisms.
        resp, lines, _ = pop._longcmd("AUTH")
        out["auth_list"] = [text(l) for l in lines]
        # "=" is an empty initial response, which PLAIN cannot use.
        out["plain_empty_ir"] = failure(lambda: pop._shortcmd("AUTH PLAIN ="))

        # RFC 5034 §4: "*" cancels the exchange.
        def cancel():
            pop._putcmd("AUTH LOGIN")
            out["cancel_challenge"] = unb64(pop._getresp())
            pop._putline(b"*")
            return pop._getresp()

        out["cancel"] = failure(cancel)
        out["unknown_mechanism"] = failure(lambda: pop._shortcmd("AUTH NO-SUCH-MECH"))

    login = spec["login"]
    if login == "plain-ir":
        out["login"] = text(pop._shortcmd("AUTH PLAIN " + b64("\0" + user + "\0" + password)))
    elif login == "plain":
        pop._putcmd("AUTH PLAIN")
        out["challenges"] = [unb64(pop._getresp())]
        pop._putline(b64("\0" + user + "\0" + password).encode("ascii"))
        out["login"] = text(pop._getresp())
    elif login == "login":
        pop._putcmd("AUTH LOGIN")
        out["challenges"] = [unb64(pop._getresp())]
        pop._putline(b64(user).encode("ascii"))
        out["challenges"].append(unb64(pop._getresp()))
        pop._putline(b64(password).encode("ascii"))
        out["login"] = text(pop._getresp())
    elif login == "cram-md5":
        pop._putcmd("AUTH CRAM-MD5")
        challenge = unb64(pop._getresp())
        out["challenges"] = [challenge]
        digest = hmac.new(password.encode("utf-8"), challenge.encode("latin-1"), "md5").hexdigest()
        pop._putline(b64(user + " " + digest).encode("ascii"))
        out["login"] = text(pop._getresp())
    elif login == "xoauth2":
        ir = b64("user=" + user + "\x01auth=Bearer " + spec["token"] + "\x01\x01")
        out["login"] = text(pop._shortcmd("AUTH XOAUTH2 " + ir))
    else:
        raise ValueError("unknown login " + login)

    # RFC 2449 §6.3: SASL stays listed after login.
    out["sasl_after"] = sasl_line(pop)
    # RFC 5034 §4: AUTH is only valid in the AUTHORIZATION state.
    out["second_auth"] = failure(lambda: pop._shortcmd("AUTH PLAIN " + b64("\0" + user + "\0" + password)))

    out["stat"] = list(pop.stat())
    resp, lines, _ = pop.retr(1)
    with open(os.path.join(spec["outdir"], "1.eml"), "wb") as f:
        f.write(b"".join(l + b"\r\n" for l in lines))
    out["quit"] = text(pop.quit())
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
