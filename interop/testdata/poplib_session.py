"""One POP3 session with Python's poplib, for the interop tests.

Usage: python3 poplib_session.py SPEC_JSON

SPEC_JSON is an object with:
  host, port   the server
  mode         "plain", "stls" (POP3.stls) or "ssl" (POP3_SSL)
  cafile       CA file to verify the server certificate with
  user, password
  apop         log in with APOP instead of USER/PASS
  outdir       directory for the retrieved messages (1.eml, 2.eml, ...)
  top          list of [message, lines] pairs to send TOP for
  dele         list of message numbers to delete before QUIT

It prints a JSON object with what the server answered. Each retrieved
message is written as the lines poplib returns (byte-stuffing already
removed) joined with CRLF, each line ending in CRLF: exactly the octets
between the +OK line and the terminating "." on the wire.
"""

import json
import os
import poplib
import ssl
import sys


def text(b):
    return b.decode("latin-1")


def main():
    spec = json.loads(sys.argv[1])
    timeout = 30
    context = ssl.create_default_context(cafile=spec["cafile"])
    if spec["mode"] == "ssl":
        pop = poplib.POP3_SSL(spec["host"], spec["port"], timeout=timeout, context=context)
    else:
        pop = poplib.POP3(spec["host"], spec["port"], timeout=timeout)
    out = {"greeting": text(pop.getwelcome())}
    out["capa_before"] = sorted(pop.capa().keys())
    if spec["mode"] == "stls":
        out["stls"] = text(pop.stls(context=context))
        out["capa_tls"] = sorted(pop.capa().keys())

    if spec.get("apop"):
        out["login"] = text(pop.apop(spec["user"], spec["password"]))
    else:
        pop.user(spec["user"])
        out["login"] = text(pop.pass_(spec["password"]))

    out["stat"] = list(pop.stat())
    resp, lines, _ = pop.list()
    out["list"] = [text(l) for l in lines]
    resp, lines, _ = pop.uidl()
    out["uidl"] = [text(l) for l in lines]
    out["uidl_1"] = text(pop.uidl(1))

    out["retr_octets"] = []
    for i in range(1, out["stat"][0] + 1):
        resp, lines, octets = pop.retr(i)
        out["retr_octets"].append(octets)
        with open(os.path.join(spec["outdir"], "%d.eml" % i), "wb") as f:
            f.write(b"".join(l + b"\r\n" for l in lines))

    out["top"] = []
    for n, count in spec.get("top") or []:
        resp, lines, _ = pop.top(n, count)
        name = "top-%d-%d.eml" % (n, count)
        with open(os.path.join(spec["outdir"], name), "wb") as f:
            f.write(b"".join(l + b"\r\n" for l in lines))
        out["top"].append(name)

    for n in spec.get("dele") or []:
        pop.dele(n)
    out["stat_after_dele"] = list(pop.stat())
    out["quit"] = text(pop.quit())
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
