/* esl: FreeSWITCH's Event Socket protocol (mod_event_socket, inbound mode), sans I/O, for both
 * ends: ccomet-media's ESL server and ccomet's ESL client. Owns the framing of client commands
 * (esl_parse_command) and of server messages (esl_parse_message), the server's replies and events
 * (auth/request, command/reply, api/response, text/disconnect-notice, text/event-plain and
 * text/event-json, BACKGROUND_JOB), the client's commands, and FreeSWITCH's URL encoding. The
 * bytes are those of FreeSWITCH 1.10.12 as recorded in reference/captures/esl-*: ESL lines end in
 * a bare LF (CRLF is tolerated on input), a block ends at an empty line, and a body follows only
 * a Content-Length header.
 *
 * It never touches a socket and holds no global state besides const tables. Parsers keep no state
 * between calls (call again with more bytes after ESL_AGAIN; the parse restarts from buf[0] and
 * its work is bounded by max_bytes), never allocate, and return spans into the caller's input
 * (transfer none). Builders append to a struct buf. Decoded events live in a caller's arena. What
 * a command means (authentication, subscriptions, filters, the api itself) is the server's
 * business, not this module's: esl_parse_command only says what was asked. */
#ifndef CC_ESL_H
#define CC_ESL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/buf.h"

enum { ESL_OK = 0, ESL_AGAIN = 1, ESL_ERROR = -1 };

#define ESL_DEFAULT_PORT        8021
#define ESL_DEFAULT_PASSWORD    "ClueCon"
#define ESL_MAX_COMMAND_HEADERS 64   /* header lines after a command's first line */
#define ESL_MAX_MESSAGE_HEADERS 32   /* header lines of a server message (outer block) */
#define ESL_MAX_EVENT_HEADERS   1024 /* header lines of a text/event-plain event */
#define ESL_DEFAULT_MAX_COMMAND (64 * 1024)
#define ESL_DEFAULT_MAX_MESSAGE (16 * 1024 * 1024)

/* Reply texts FreeSWITCH sends, byte for byte (captures esl-01..04, and mod_event_socket.c). */
#define ESL_REPLY_ACCEPTED          "+OK accepted"
#define ESL_REPLY_INVALID           "-ERR invalid"
#define ESL_REPLY_BYE               "+OK bye"
#define ESL_REPLY_NOT_FOUND         "-ERR command not found"
#define ESL_REPLY_EVENTS_PLAIN      "+OK event listener enabled plain"
#define ESL_REPLY_EVENTS_JSON       "+OK event listener enabled json"
#define ESL_REPLY_EVENTS_XML        "+OK event listener enabled xml"
#define ESL_REPLY_NO_EVENTS         "+OK no longer listening for events"
#define ESL_REPLY_NO_KEYWORDS       "-ERR no keywords supplied"
#define ESL_REPLY_EVENTS_NIXED      "+OK events nixed"
#define ESL_REPLY_NOT_LISTENING     "-ERR not listening for events"
#define ESL_REPLY_INVALID_SYNTAX    "-ERR invalid syntax"
#define ESL_REPLY_WILL_NOT_LINGER   "+OK will not linger"
#define ESL_REPLY_NO_LONGER_LOGGING "+OK no longer logging"
/* The api/response body of an api command nobody implements: "-ERR <cmd> Command not found!\n". */

/* A span of the caller's input (transfer none), not NUL-terminated. ptr is NULL when absent;
 * a present span may be empty. */
struct esl_str {
    const char *ptr;
    size_t len;
};

struct esl_header_span {
    struct esl_str name;  /* as sent (case kept), never empty */
    struct esl_str value; /* leading spaces skipped, a trailing CR dropped; may be empty */
};

enum esl_format { ESL_FORMAT_PLAIN = 0, ESL_FORMAT_JSON, ESL_FORMAT_XML };

/* ---- server side: client commands --------------------------------------------------------- */

enum esl_cmd_kind {
    ESL_CMD_UNKNOWN = 0, /* answer ESL_REPLY_NOT_FOUND; verb says what was sent */
    ESL_CMD_AUTH,        /* auth <password> */
    ESL_CMD_API,         /* api <cmd> [<args>] */
    ESL_CMD_BGAPI,       /* bgapi <cmd> [<args>], optional Job-UUID header line */
    ESL_CMD_EVENT,       /* event [plain|json|xml] <names...> */
    ESL_CMD_NIXEVENT,    /* nixevent <names...> */
    ESL_CMD_NOEVENTS,    /* noevents */
    ESL_CMD_EXIT,        /* exit */
    ESL_CMD_FILTER,      /* filter <header> <value> | filter delete <header|all> [<value>] */
    ESL_CMD_LINGER,      /* linger [<seconds>] */
    ESL_CMD_NOLINGER,    /* nolinger */
    ESL_CMD_LOG,         /* log [<level>] */
    ESL_CMD_NOLOG,       /* nolog */
    ESL_CMD_MYEVENTS,    /* myevents [<uuid> [plain|json|xml]] */
    ESL_CMD_DIVERT,      /* divert_events on|off */
    ESL_CMD_SENDEVENT,   /* sendevent <EVENT_NAME>, header lines, optional Content-Length body */
    ESL_CMD_SENDMSG,     /* sendmsg [<uuid>], header lines, optional Content-Length body */
};

struct esl_command {
    size_t consumed; /* ESL_OK: input bytes used (leading empty lines, the block, the body) */
    enum esl_cmd_kind kind;
    struct esl_str line; /* the first line, without its terminator */
    struct esl_str verb; /* its first word, as sent (verbs match ASCII case-insensitively) */
    struct esl_str args; /* the rest of the line after the verb and its spaces (may be empty) */
    struct esl_header_span headers[ESL_MAX_COMMAND_HEADERS]; /* in order, duplicates kept */
    size_t n_headers;
    const uint8_t *body; /* (nullable) the Content-Length body, any command may carry one */
    size_t body_len;

    /* Per kind; spans into the input, ptr NULL when absent. */
    struct esl_str password;    /* AUTH: the whole rest of the line (may be empty) */
    struct esl_str api_command; /* API, BGAPI: the first word, never empty */
    struct esl_str api_args;    /* API, BGAPI: after the first space (nullable), verbatim */
    struct esl_str job_uuid;    /* BGAPI: the Job-UUID header's value (nullable) */
    enum esl_format format;     /* EVENT, MYEVENTS: plain unless a format word was given */
    bool format_given;
    struct esl_str names; /* EVENT, NIXEVENT: the names, space separated (esl_next_word) */
    size_t n_names;       /* EVENT, NIXEVENT: how many names ("CUSTOM" and subclasses count) */
    bool filter_delete;   /* FILTER */
    struct esl_str filter_header; /* FILTER: may be empty ("-ERR invalid syntax") */
    struct esl_str filter_value;  /* FILTER: the rest after the header name (nullable) */
    int64_t linger_seconds;       /* LINGER: -1 when not given or not all digits */
    struct esl_str log_level;     /* LOG: nullable (FreeSWITCH's default is debug) */
    bool divert_on;               /* DIVERT: "on" (case-insensitive), anything else is off */
    struct esl_str uuid;          /* MYEVENTS, SENDMSG: nullable */
    struct esl_str event_name;    /* SENDEVENT: the first word of args (nullable) */
};

/* Parses one command at the start of buf[0..len). ESL_OK: *cmd is filled, cmd->consumed says how
 * much of buf it used. ESL_AGAIN: incomplete and nothing wrong so far. ESL_ERROR: *err is a static
 * reason; the stream cannot be resynchronised, close it (FreeSWITCH would, too).
 *
 * The grammar, as FreeSWITCH reads it (mod_event_socket.c read_packet / parse_command):
 *   - a command is lines ended by "\n" (or "\r\n") up to an empty line; empty lines before it
 *     are skipped;
 *   - the first line is "<verb> <args>"; the verb is matched ASCII case-insensitively as a whole
 *     word (FreeSWITCH matches prefixes: "eventfoo" is an event command there, unknown here);
 *   - later lines are "Name: value" (spaces after ':' skipped, name trimmed); lines without ':'
 *     are ignored as FreeSWITCH does; more than ESL_MAX_COMMAND_HEADERS lines is an error;
 *   - a Content-Length header (digits only, else an error) is followed by that many body bytes;
 *   - a NUL byte in a line is an error (the body may hold any byte);
 *   - the whole command, body included, must fit in max_bytes (0 means ESL_DEFAULT_MAX_COMMAND),
 * reported as soon as it is known not to. api/bgapi with no command word, like FreeSWITCH, are
 * UNKNOWN. */
int esl_parse_command(const uint8_t *buf, size_t len, size_t max_bytes, struct esl_command *cmd,
                      const char **err);

/* Steps through space-separated words of [*p, end): true with the next word in *w (transfer
 * none), advancing *p; false at the end. For cmd->names. */
bool esl_next_word(const char **p, const char *end, struct esl_str *w);

/* ASCII case-insensitive comparison of a span with a C string. */
bool esl_str_eq(struct esl_str s, const char *lit);

/* The value of the first header called name (case-insensitive) among a command's header lines. */
struct esl_str esl_command_header(const struct esl_command *cmd, const char *name);

/* ---- server side: replies ------------------------------------------------------------------ */

/* "Content-Type: auth/request\n\n", the banner sent on connect. */
void esl_put_auth_request(struct buf *out);

/* "Content-Type: command/reply\nReply-Text: <text>\n\n". A CR or LF in text (which would break
 * the framing) is sent as a space. */
void esl_put_command_reply(struct buf *out, const char *text);

/* bgapi's reply: "Content-Type: command/reply\nReply-Text: +OK Job-UUID: <uuid>\n
 * Job-UUID: <uuid>\n\n". */
void esl_put_command_reply_job(struct buf *out, const char *job_uuid, size_t uuid_len);

/* "Content-Type: api/response\nContent-Length: <len>\n\n<body>" (Content-Length even when 0). */
void esl_put_api_response(struct buf *out, const char *body, size_t len);

/* FreeSWITCH's closing words after "exit" or a wrong password, then the server closes:
 * "Content-Type: text/disconnect-notice\nContent-Length: 67\n\nDisconnected, goodbye.\n
 * See you at ClueCon! http://www.cluecon.com/\n". */
void esl_put_disconnect_notice(struct buf *out);

/* What FreeSWITCH sends a peer its ACL refuses, before closing:
 * "Content-Type: text/rude-rejection\nContent-Length: 24\n\nAccess Denied, go away.\n". */
void esl_put_rude_rejection(struct buf *out);

/* ---- events -------------------------------------------------------------------------------- */

struct esl_header {
    const char *name; /* NUL-terminated, in the event's arena */
    size_t name_len;
    const char *value; /* NUL-terminated, in the event's arena (may contain NUL bytes before) */
    size_t value_len;
};

/* An event: an ordered list of headers (duplicate names kept, as FreeSWITCH does: a floor-change
 * event carries the Conference-* headers twice) and an optional body. Everything lives in the
 * arena given to esl_event_init (transfer none); the event dies with it. Not thread-safe. */
struct esl_event {
    struct arena *arena;
    struct esl_header *headers;
    size_t n_headers, cap;
    const char *body; /* (nullable) NUL-terminated copy, body_len bytes */
    size_t body_len;
};

void esl_event_init(struct esl_event *ev, struct arena *a);
/* Appends a header; name and value are copied. An empty value is sent as "_undef_" in plain
 * events (FreeSWITCH's rule) and as "" in JSON. */
void esl_event_add(struct esl_event *ev, const char *name, const char *value);
void esl_event_add_n(struct esl_event *ev, const char *name, size_t name_len, const char *value,
                     size_t value_len);
void esl_event_addf(struct esl_event *ev, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void esl_event_set_body(struct esl_event *ev, const char *body, size_t len); /* copied */
/* The first header called name (ASCII case-insensitive) or NULL; *len (nullable) its length. */
const char *esl_event_get(const struct esl_event *ev, const char *name, size_t *len);

/* The headers FreeSWITCH puts at the top of every event (switch_event_prep_for_delivery). */
struct esl_event_base {
    const char *core_uuid;
    const char *hostname;   /* FreeSWITCH-Hostname */
    const char *switchname; /* FreeSWITCH-Switchname */
    const char *ipv4;
    const char *ipv6;
    uint64_t timestamp_us; /* Event-Date-Timestamp: microseconds since the epoch */
    int32_t utc_offset_s;  /* for Event-Date-Local ("%Y-%m-%d %H:%M:%S" local time) */
    const char *calling_file;
    const char *calling_function;
    int calling_line;
    uint64_t sequence; /* Event-Sequence */
};

/* Starts an event as FreeSWITCH lays it out: for CUSTOM events Event-Subclass first (subclass
 * non-NULL), then Event-Name, Core-UUID, FreeSWITCH-Hostname, -Switchname, -IPv4, -IPv6,
 * Event-Date-Local, Event-Date-GMT (RFC 822), Event-Date-Timestamp, Event-Calling-File,
 * -Function, -Line-Number, Event-Sequence. The caller appends the event's own headers. */
void esl_event_begin(struct esl_event *ev, struct arena *a, const char *event_name,
                     const char *subclass, const struct esl_event_base *base);

/* A BACKGROUND_JOB event for bgapi: the base headers (Event-Calling-Function api_exec ...),
 * Job-UUID, Job-Command, Job-Command-Arg (only when arg is non-NULL), and the api's output as
 * the body. */
void esl_event_background_job(struct esl_event *ev, struct arena *a,
                              const struct esl_event_base *base, const char *job_uuid,
                              const char *command, const char *arg, const char *body,
                              size_t body_len);

/* The event alone as FreeSWITCH serialises it (switch_event_serialize): "Name: value\n" per
 * header, values URL-encoded (esl_url_encode), empty values as "_undef_", then "\n", or with a
 * non-empty body "Content-Length: <n>\n\n<body>". */
void esl_event_put_plain(struct buf *out, const struct esl_event *ev);
/* The event as one JSON object (switch_event_serialize_json, cJSON unformatted): headers in order
 * as string members (duplicates kept), then with a body "Content-Length" and "_body". Strings are
 * escaped as cJSON does: \" \\ \b \f \n \r \t, other bytes below 0x20 as \u00xx, the rest as is. */
void esl_event_put_json(struct buf *out, const struct esl_event *ev);

/* The event framed for a listener: "Content-Length: <n>\nContent-Type: text/event-plain\n\n"
 * (or text/event-json) and the serialised event. ESL_FORMAT_XML is not supported (nothing is
 * written, ESL_ERROR returned): answer "event xml" with plain or with an error. */
int esl_put_event(struct buf *out, enum esl_format fmt, const struct esl_event *ev);

/* ---- client side: server messages ---------------------------------------------------------- */

enum esl_msg_type {
    ESL_MSG_OTHER = 0, /* any other (or no) Content-Type */
    ESL_MSG_AUTH_REQUEST,
    ESL_MSG_COMMAND_REPLY,
    ESL_MSG_API_RESPONSE,
    ESL_MSG_EVENT_PLAIN,
    ESL_MSG_EVENT_JSON,
    ESL_MSG_EVENT_XML,
    ESL_MSG_DISCONNECT_NOTICE,
    ESL_MSG_RUDE_REJECTION,
    ESL_MSG_LOG_DATA,
};

struct esl_message {
    size_t consumed; /* ESL_OK: bytes of the message, headers and body */
    enum esl_msg_type type;
    struct esl_header_span headers[ESL_MAX_MESSAGE_HEADERS];
    size_t n_headers;
    struct esl_str content_type; /* nullable */
    struct esl_str reply_text;   /* nullable: command/reply's Reply-Text */
    struct esl_str job_uuid;     /* nullable: bgapi's reply */
    const uint8_t *body;         /* (nullable) the Content-Length body */
    size_t body_len;
    /* ESL_MSG_EVENT_PLAIN: the event inside the body, checked but not decoded. */
    const uint8_t *event_block; /* its header lines, without the empty line */
    size_t event_block_len;
    size_t event_n_headers;    /* its Content-Length line excluded */
    const uint8_t *event_body; /* (nullable) after the empty line, per its Content-Length */
    size_t event_body_len;
};

/* Parses one server message at the start of buf[0..len), like esl_parse_command (same OK / AGAIN
 * / ERROR contract; 0 for max_bytes means ESL_DEFAULT_MAX_MESSAGE). Header lines are
 * "Name: value" ("\n" or "\r\n"); more than ESL_MAX_MESSAGE_HEADERS, a line without ':', a
 * Content-Length that is not all digits, or a message beyond max_bytes is an error. For
 * text/event-plain the body must itself be a well-formed event: "Name: value\n" lines (at most
 * ESL_MAX_EVENT_HEADERS, no NUL byte), an empty line, and exactly as many bytes as its own
 * Content-Length (none without one). text/event-json bodies are left to the caller (jansson). */
int esl_parse_message(const uint8_t *buf, size_t len, size_t max_bytes, struct esl_message *m,
                      const char **err);

/* The value of the first outer header called name (case-insensitive); ptr NULL when absent. */
struct esl_str esl_message_header(const struct esl_message *m, const char *name);

/* Decodes a text/event-plain message's event into *ev (in arena a): header values URL-decoded,
 * the event's body as ev->body; its Content-Length line is not kept as a header (esl_put_event
 * writes it again from the body, so decode then encode gives the same bytes). ESL_ERROR when m is
 * not a plain event. Done apart from esl_parse_message so that an incomplete message, parsed
 * again and again, costs no allocation. */
int esl_message_event(const struct esl_message *m, struct arena *a, struct esl_event *ev,
                      const char **err);

/* The same from a bare event-plain text (the body of a text/event-plain message). */
int esl_event_parse_plain(const uint8_t *p, size_t n, struct arena *a, struct esl_event *ev,
                          const char **err);

/* ---- client side: commands ----------------------------------------------------------------- */

/* Each appends one command ending in "\n\n". They return ESL_ERROR and append nothing when a
 * text would break the framing (a CR, LF or NUL byte in it). */
int esl_put_client_auth(struct buf *out, const char *password);
int esl_put_client_api(struct buf *out, const char *command_line); /* "api <command_line>" */
/* "bgapi <command_line>\n", then "Job-UUID: <uuid>\n" when job_uuid is non-NULL, then "\n". */
int esl_put_client_bgapi(struct buf *out, const char *command_line, const char *job_uuid);
/* "event <plain|json|xml> <names>", e.g. names "CUSTOM conference::maintenance". */
int esl_put_client_event(struct buf *out, enum esl_format fmt, const char *names);
/* Any one-line command: "exit", "noevents", "filter Event-Subclass conference::maintenance". */
int esl_put_client_command(struct buf *out, const char *line);

/* ---- URL encoding, as FreeSWITCH does it ------------------------------------------------------
 */

/* switch_url_encode: bytes below 0x20 or above 0x7e and the bytes of SWITCH_URL_UNSAFE
 * ("\r\n #%&+:;<=>?@[\]^`{|}\"") become %XX with upper-case hex; every other byte (letters,
 * digits, ! $ ' ( ) * , - . / _ ~) is copied. A space is %20, never '+'. Quirk kept: a '%' that
 * already starts an escape with upper-case hex digits ("%3A", not "%3a") is copied, not
 * re-encoded, so encoding is idempotent on its own output but decode(encode(s)) != s when s holds
 * such a sequence. out needs room for esl_url_encoded_len(in, len) bytes (at most 3 * len); no
 * NUL is written. Returns the bytes written. */
size_t esl_url_encode(const char *in, size_t len, char *out);
size_t esl_url_encoded_len(const char *in, size_t len);

/* switch_url_decode: "%" and two hex digits (either case) become that byte; a '%' not followed
 * by two hex digits is copied; '+' stays '+'. out needs len bytes; out == in is allowed.
 * Returns the bytes written. Never fails. */
size_t esl_url_decode(const char *in, size_t len, char *out);

#endif
