<?php
// examples/call.php: the backend half of the video chat demo (web/demo/video.html), as CppComet's
// video-chat-example/call.php was: a page cannot invite anyone itself, its backend does, with one
// CometQL INSERT INTO conference per participant (PHP mysqli; CometQL speaks MySQL's protocol).
//
// Over HTTP (make run serves this file with `php -S`; the demo page POSTs a form to it):
//   POST action=call  caller=<user id>  users=<id>,<id>,...  [room=<digits>]  [profile=video|audio]
//        -> {"ok":true,"room":"<room>","invited":[caller, ...users]}
//   POST action=end   room=<digits>     -> DELETE FROM conference WHERE name = room (ends the call)
//   POST action=kick  room=<digits>  user=<id>   -> DELETE ... AND user_id = id (that member leaves)
// From the command line (a backend script, the tests):
//   php examples/call.php --caller=1 --users=2,3 [--room=101] [--profile=video]
//
// DEMO ONLY: a real backend takes the caller from its own session and checks who may call whom;
// this file trusts the request. It connects to CometQL with CCOMET_HOST, CCOMET_PORT, CCOMET_USER
// (root = dev_id 0) and CCOMET_PASSWORD from the environment (make run sets them).
declare(strict_types=1);

mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT);

function cometql(): mysqli
{
    return new mysqli(
        getenv('CCOMET_HOST') ?: '127.0.0.1',
        getenv('CCOMET_USER') ?: 'root',
        getenv('CCOMET_PASSWORD') ?: 'password',
        '',
        (int)(getenv('CCOMET_PORT') ?: 3307)
    );
}

/** Invites the caller and every callee to `room`: one INSERT each, as CppComet documents. */
function call(int $caller, array $users, string $room, string $profile, string $text): array
{
    $db = cometql();
    $invited = array_values(array_unique(array_merge([$caller], $users)));
    $message = json_encode(['caller' => $caller, 'text' => $text]);
    $st = $db->prepare('INSERT INTO conference (name, user_id, caller_id, message, profile) VALUES (?, ?, ?, ?, ?)');
    foreach ($invited as $uid) {
        $st->bind_param('siiss', $room, $uid, $caller, $message, $profile);
        $st->execute();
    }
    $st->close();
    $db->close();
    return ['ok' => true, 'room' => $room, 'invited' => $invited];
}

function end_call(string $room, ?int $user): array
{
    $db = cometql();
    if ($user === null) {
        $st = $db->prepare('DELETE FROM conference WHERE name = ?');
        $st->bind_param('s', $room);
    } else {
        $st = $db->prepare('DELETE FROM conference WHERE name = ? AND user_id = ?');
        $st->bind_param('si', $room, $user);
    }
    $st->execute();
    $st->close();
    $db->close();
    return ['ok' => true, 'room' => $room];
}

function ids(string $list): array
{
    return array_values(array_filter(array_map('intval', preg_split('/[\s,]+/', $list, -1, PREG_SPLIT_NO_EMPTY)), fn($i) => $i > 0));
}

/** The request's parameters, checked; throws InvalidArgumentException with what is wrong. */
function handle(array $p): array
{
    $action = $p['action'] ?? 'call';
    $room = isset($p['room']) && $p['room'] !== '' ? (string)$p['room'] : (string)random_int(100000, 999999999);
    if (!preg_match('/^[0-9]{1,32}$/', $room)) throw new InvalidArgumentException('room: digits only');
    if ($action === 'end') return end_call($room, null);
    if ($action === 'kick') {
        $user = (int)($p['user'] ?? 0);
        if ($user <= 0) throw new InvalidArgumentException('user: a user id');
        return end_call($room, $user);
    }
    if ($action !== 'call') throw new InvalidArgumentException('action: call, end or kick');
    $caller = (int)($p['caller'] ?? 0);
    $users = ids((string)($p['users'] ?? ''));
    if ($caller <= 0) throw new InvalidArgumentException('caller: a user id');
    if (!$users) throw new InvalidArgumentException('users: one or more user ids');
    $profile = ($p['profile'] ?? 'video') === 'audio' ? 'audio' : 'video';
    return call($caller, $users, $room, $profile, (string)($p['text'] ?? ''));
}

if (PHP_SAPI === 'cli') {
    $o = getopt('', ['caller:', 'users:', 'room:', 'profile:', 'action:', 'user:', 'text:']);
    try {
        echo json_encode(handle($o)), "\n";
        exit(0);
    } catch (Throwable $e) {
        fwrite(STDERR, 'call.php: ' . $e->getMessage() . "\n");
        exit($e instanceof InvalidArgumentException ? 2 : 1);
    }
}

// The demo page is served by ccomet (another port): allow it to read the answer.
header('Access-Control-Allow-Origin: *');
header('Access-Control-Allow-Headers: Content-Type');
header('Content-Type: application/json');
if ($_SERVER['REQUEST_METHOD'] === 'OPTIONS') {
    http_response_code(204);
    exit;
}
if ($_SERVER['REQUEST_METHOD'] !== 'POST') {
    http_response_code(405);
    echo json_encode(['ok' => false, 'error' => 'POST action=call caller=.. users=..']);
    exit;
}
try {
    echo json_encode(handle($_POST));
} catch (InvalidArgumentException $e) {
    http_response_code(400);
    echo json_encode(['ok' => false, 'error' => $e->getMessage()]);
} catch (Throwable $e) {
    http_response_code(502);
    echo json_encode(['ok' => false, 'error' => 'CometQL: ' . $e->getMessage()]);
}
