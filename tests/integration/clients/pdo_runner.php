<?php
// Runs scenario steps on one PDO mysql connection, every step via prepare()+execute(). Input
// (stdin, JSON): host, port, user, password, db, steps[{sql, params}], emulate (bool:
// PDO::ATTR_EMULATE_PREPARES; false = native COM_STMT_PREPARE/EXECUTE).
// Output (stdout, JSON): {connect: null|err, results: [...]} as in tests/integration/scenario.mjs.
$in = json_decode(stream_get_contents(STDIN), true);

function err_of(Throwable $e): array {
    if ($e instanceof PDOException && is_array($e->errorInfo) && isset($e->errorInfo[1])) {
        return ['ok' => false, 'code' => $e->errorInfo[1], 'sqlstate' => $e->errorInfo[0], 'message' => $e->errorInfo[2]];
    }
    // connect errors: "SQLSTATE[HY000] [1045] message"
    if (preg_match('/SQLSTATE\[([0-9A-Z]{5})\] \[(\d+)\] (.*)/s', $e->getMessage(), $mm)) {
        return ['ok' => false, 'code' => (int)$mm[2], 'sqlstate' => $mm[1], 'message' => $mm[3]];
    }
    return ['ok' => false, 'code' => $e->getCode(), 'sqlstate' => null, 'message' => get_class($e) . ': ' . $e->getMessage()];
}
function out(array $o): void {
    echo json_encode($o, JSON_INVALID_UTF8_SUBSTITUTE | JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES), "\n";
}

try {
    $dsn = "mysql:host={$in['host']};port={$in['port']};charset=utf8mb4" . (!empty($in['db']) ? ";dbname={$in['db']}" : '');
    $opts = [
        PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
        PDO::ATTR_EMULATE_PREPARES => (bool)$in['emulate'],
        PDO::ATTR_TIMEOUT => 5,
    ];
    $pdo = new PDO($dsn, $in['user'], $in['password'], $opts);
} catch (Throwable $e) {
    out(['connect' => err_of($e), 'results' => []]);
    exit(0);
}

$results = [];
foreach ($in['steps'] as $s) {
    try {
        $st = $pdo->prepare($s['sql']);
        foreach ($s['params'] ?? [] as $i => $p) {
            $st->bindValue($i + 1, $p, is_int($p) ? PDO::PARAM_INT : PDO::PARAM_STR);
        }
        $st->execute();
        $n = $st->columnCount();
        if ($n > 0) {
            $cols = [];
            for ($i = 0; $i < $n; $i++) $cols[] = $st->getColumnMeta($i)['name'];
            $results[] = ['ok' => true, 'columns' => $cols, 'rows' => $st->fetchAll(PDO::FETCH_NUM), 'affected' => null, 'insertId' => null];
        } else {
            $results[] = ['ok' => true, 'columns' => null, 'rows' => null, 'affected' => $st->rowCount(), 'insertId' => $pdo->lastInsertId()];
        }
        $st->closeCursor();
    } catch (Throwable $e) {
        $results[] = err_of($e);
    }
}
out(['connect' => null, 'results' => $results]);
