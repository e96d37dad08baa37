"""Runs scenario steps on one PyMySQL connection (text protocol; `?` parameters are bound by
PyMySQL's client-side interpolation). Input (stdin, JSON): host, port, user, password, db,
steps[{sql, params}], ssl (bool). Output (stdout, JSON): {connect: null|err, results: [...]}
as in tests/integration/scenario.mjs."""
import json
import ssl
import sys

import pymysql


def err_of(e):
    code = e.args[0] if e.args else None
    msg = e.args[1] if len(e.args) > 1 else str(e)
    # PyMySQL drops the SQLSTATE of ERR packets.
    return {"ok": False, "code": code, "sqlstate": None, "message": msg}


def plain(v):
    if isinstance(v, (bytes, bytearray)):
        # a text column sent with the binary charset: visible in the test's comparison
        return {"$bytes": v.decode("utf-8", "replace")}
    return v


def main():
    cfg = json.load(sys.stdin)
    kw = dict(host=cfg["host"], port=cfg["port"], user=cfg["user"], password=cfg["password"],
              database=cfg.get("db") or None, connect_timeout=5, charset="utf8mb4")
    if cfg.get("ssl"):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        kw["ssl"] = ctx
    try:
        conn = pymysql.connect(**kw)
    except pymysql.err.MySQLError as e:
        print(json.dumps({"connect": err_of(e), "results": []}))
        return
    results = []
    for s in cfg["steps"]:
        cur = conn.cursor()
        try:
            if s["params"] is not None:
                cur.execute(s["sql"].replace("?", "%s"), s["params"])
            else:
                cur.execute(s["sql"])
            if cur.description:
                results.append({"ok": True, "columns": [d[0] for d in cur.description],
                                "rows": [[plain(v) for v in row] for row in cur.fetchall()],
                                "affected": None, "insertId": None})
            else:
                results.append({"ok": True, "columns": None, "rows": None,
                                "affected": cur.rowcount, "insertId": cur.lastrowid})
        except pymysql.err.MySQLError as e:
            results.append(err_of(e))
        finally:
            cur.close()
    conn.close()
    print(json.dumps({"connect": None, "results": results}, ensure_ascii=False))


main()
