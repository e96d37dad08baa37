<?php
// Runs scenario steps on one mysqli connection. Input (stdin, JSON): host, port, user, password,
// db, steps[{sql, params}], native_ints (MYSQLI_OPT_INT_AND_FLOAT_NATIVE). Steps with params go
// through mysqli prepared statements (binary protocol); the others through mysqli::query (text).
// Output (stdout, JSON): {connect: null|err, results: [...]} as in tests/integration/scenario.mjs.
mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT);
$in = json_decode(stream_get_contents(STDIN), true);

function err_of(Throwable $e): array {
    $state = $e instanceof mysqli_sql_exception ? $e->getSqlState() : null;
    return ['ok' => false, 'code' => $e->getCode(), 'sqlstate' => $state, 'message' => $e->getMessage()];
}
function out(array $o): void {
    echo json_encode($o, JSON_INVALID_UTF8_SUBSTITUTE | JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES), "\n";
}
function result_of($res, int $affected, $insert_id): array {
    if ($res instanceof mysqli_result) {
        $cols = array_map(fn($f) => $f->name, $res->fetch_fields());
        $rows = $res->fetch_all(MYSQLI_NUM);
        $res->free();
        return ['ok' => true, 'columns' => $cols, 'rows' => $rows, 'affected' => null, 'insertId' => null];
    }
    return ['ok' => true, 'columns' => null, 'rows' => null, 'affected' => $affected, 'insertId' => $insert_id];
}

try {
    $m = mysqli_init();
    if (!empty($in['native_ints'])) $m->options(MYSQLI_OPT_INT_AND_FLOAT_NATIVE, true);
    $flags = 0;
    if (!empty($in['ssl'])) {
        $m->ssl_set(null, null, null, null, null);
        $m->options(MYSQLI_OPT_SSL_VERIFY_SERVER_CERT, false);
        $flags |= MYSQLI_CLIENT_SSL_DONT_VERIFY_SERVER_CERT;
    }
    $m->real_connect($in['host'], $in['user'], $in['password'], $in['db'] ?? null, $in['port'], null, $flags);
} catch (Throwable $e) {
    out(['connect' => err_of($e), 'results' => []]);
    exit(0);
}

$results = [];
foreach ($in['steps'] as $s) {
    try {
        if ($s['params'] !== null) {
            $st = $m->prepare($s['sql']);
            if ($s['params']) {
                $types = '';
                foreach ($s['params'] as $p) $types .= is_int($p) ? 'i' : 's';
                $st->bind_param($types, ...$s['params']);
            }
            $st->execute();
            $res = $st->get_result();
            $results[] = result_of($res, $st->affected_rows, $st->insert_id);
            $st->close();
        } else {
            $res = $m->query($s['sql']);
            $results[] = result_of($res, $m->affected_rows, $m->insert_id);
        }
    } catch (Throwable $e) {
        $results[] = err_of($e);
    }
}
$m->close();
out(['connect' => null, 'results' => $results]);
