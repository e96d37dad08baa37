/* fuzz/sip_msg: libFuzzer target for the SIP message layer (src/proto/sip_msg.c). Parses every
 * input under the default limit and a small one and checks the contract (a reason on every error,
 * an answerable error only for requests with a status from the documented set, accessors
 * consistent with each other); for a request it records a source address, builds responses (the
 * reject status, 100, 200 with a body, 401 with a challenge), parses each back and compares the
 * transaction fields; for an INVITE it builds a dialog and a BYE and parses that back; it verifies
 * a digest and checks a nonce from the parsed Authorization, and runs the dialplan on the
 * Request-URI user. libosip2 itself is not instrumented; the fuzzer checks our glue around it. */
#include "proto/sip_msg.h"

#include "core/buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ENSURE(c)                                                                                  \
    do {                                                                                           \
        if (!(c)) __builtin_trap();                                                                \
    } while (0)

static volatile size_t sink;

static void touch(const char *s)
{
    if (!s) return;
    sink += strlen(s);
}

static void check_fields(const struct sip_msg *m)
{
    touch(m->method);
    touch(m->reason);
    touch(m->ruri);
    touch(m->ruri_scheme);
    touch(m->ruri_user);
    touch(m->ruri_host);
    touch(m->from_display);
    touch(m->from_uri);
    touch(m->from_user);
    touch(m->from_host);
    touch(m->from_tag);
    touch(m->to_display);
    touch(m->to_uri);
    touch(m->to_user);
    touch(m->to_host);
    touch(m->to_tag);
    touch(m->call_id);
    touch(m->cseq_method);
    touch(m->via_transport);
    touch(m->via_host);
    touch(m->via_branch);
    touch(m->contact_uri);
    touch(m->user_agent);
    touch(m->content_type);
    touch(m->auth.username);
    touch(m->auth.realm);
    touch(m->auth.nonce);
    touch(m->auth.uri);
    touch(m->auth.response);
    touch(m->auth.algorithm);
    touch(m->auth.qop);
    touch(m->auth.nc);
    touch(m->auth.cnonce);
    touch(m->auth.opaque);
    ENSURE(m->n_contacts <= SIP_MAX_CONTACTS);
    for (size_t i = 0; i < m->n_contacts; i++)
        touch(m->contacts[i].uri);
    ENSURE((m->n_contacts == 0) == (m->contact_uri == NULL));
    if (m->body) {
        ENSURE(m->body_len > 0);
        sink += (unsigned char)m->body[m->body_len - 1];
        ENSURE(m->body[m->body_len] == '\0');
    } else {
        ENSURE(m->body_len == 0);
    }
    touch(sip_msg_header(m, "supported"));
    touch(sip_msg_header(m, "x-unknown"));
}

/* A built response parses back as the response to req. */
static void reparse_response(const struct sip_msg *req, const struct buf *b, int code)
{
    struct sip_msg *r = NULL;
    const char *err = NULL;
    int rc = sip_parse((const char *)b->data, b->len, b->len, &r, &err);
    ENSURE(rc == SIP_OK && r != NULL);
    ENSURE(!r->is_request && r->status == code);
    ENSURE(strcmp(r->call_id, req->call_id) == 0);
    ENSURE(r->cseq == req->cseq && strcmp(r->cseq_method, req->cseq_method) == 0);
    ENSURE(strcmp(r->via_branch, req->via_branch) == 0);
    ENSURE(strcmp(r->from_tag, req->from_tag) == 0);
    if (code > 100 && req->to_tag) ENSURE(r->to_tag && strcmp(r->to_tag, req->to_tag) == 0);
    check_fields(r);
    sip_msg_free(r);
}

static void respond(const struct sip_msg *req, int code, const char *ct, const char *body)
{
    static const struct sip_header extra[] = {{"User-Agent", "ccomet-media"},
                                              {"Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS"}};
    struct buf b;
    buf_init(&b);
    ENSURE(sip_build_response(req, code, NULL, "fuzzTag1", extra, 2, ct, body,
                              body ? strlen(body) : 0, &b) == SIP_OK);
    reparse_response(req, &b, code);
    buf_free(&b);
}

static void dialog(const struct sip_msg *inv)
{
    struct sip_dialog d;
    const char *err = NULL;
    if (sip_dialog_from_invite(inv, "localTag9", &d, &err) != SIP_OK) {
        ENSURE(err != NULL);
        return;
    }
    struct buf b;
    buf_init(&b);
    char branch[SIP_BRANCH_SIZE];
    /* a remote target with a space would make a broken Request-Line: refused, not built */
    if (sip_build_request(&d, "BYE", "WSS", "media.invalid", NULL, 0, NULL, NULL, 0, &b, branch) ==
        SIP_OK) {
        struct sip_msg *bye = NULL;
        int rc = sip_parse((const char *)b.data, b.len, b.len, &bye, &err);
        ENSURE(rc == SIP_OK && bye != NULL);
        ENSURE(bye->is_request && strcmp(bye->method, "BYE") == 0);
        ENSURE(strcmp(bye->via_branch, branch) == 0);
        ENSURE(strcmp(bye->from_tag, "localTag9") == 0);
        ENSURE(strcmp(bye->to_tag, inv->from_tag) == 0);
        ENSURE(strcmp(bye->call_id, inv->call_id) == 0);
        ENSURE(bye->cseq == 1);
        sip_msg_free(bye);
    }
    buf_free(&b);
    sip_dialog_free(&d);
}

static void digest(const struct sip_msg *m)
{
    static const uint8_t secret[16] = "fuzz-secret-0123";
    const char *method = m->method ? m->method : "REGISTER";
    int st = sip_digest_verify(&m->auth, method, "password", NULL);
    ENSURE(st >= SIP_DIGEST_VALID && st <= SIP_DIGEST_UNSUPPORTED);
    st = sip_digest_verify(&m->auth, method, NULL, "0123456789abcdef0123456789abcdef");
    ENSURE(st >= SIP_DIGEST_VALID && st <= SIP_DIGEST_UNSUPPORTED);
    if (!m->auth.present) ENSURE(st == SIP_DIGEST_MALFORMED);
    int ns = sip_nonce_check(m->auth.nonce, 1000, 300, secret);
    ENSURE(ns == SIP_NONCE_INVALID); /* nothing in the corpus was signed with this secret */
    char ch[512];
    size_t n = sip_digest_challenge(ch, sizeof ch, m->from_host ? m->from_host : "r",
                                    m->call_id ? m->call_id : "n", true);
    ENSURE(n == strlen(ch));
}

static void dialplan(const struct sip_msg *m)
{
    if (!m->ruri_user) return;
    char c1[64], c2[64];
    const char *err = NULL;
    int rc = sip_dialplan_match(m->ruri_user, SIP_DIALPLAN_CONFERENCE, c1, sizeof c1, c2, sizeof c2,
                                &err);
    ENSURE(rc == SIP_DIALPLAN_MATCH || rc == SIP_DIALPLAN_NO_MATCH ||
           (rc == SIP_DIALPLAN_ERROR && err));
    if (rc == SIP_DIALPLAN_MATCH) {
        ENSURE(strchr(c1, '*') != NULL && c2[0] != '\0');
        char conf[160];
        ENSURE(sip_conference_name(conf, sizeof conf, c1, "FSdefaultDomain") > 0);
    }
}

static void run(const uint8_t *data, size_t size, size_t max_bytes)
{
    struct sip_msg *m = NULL;
    const char *err = NULL;
    int rc = sip_parse((const char *)data, size, max_bytes, &m, &err);
    if (rc != SIP_OK) {
        ENSURE(rc == SIP_ERROR && err != NULL && err[0] != '\0');
        if (!m) return;
        ENSURE(m->is_request);
        ENSURE(m->reject_status == 400 || m->reject_status == 415 || m->reject_status == 416 ||
               m->reject_status == 505);
        struct buf b;
        buf_init(&b);
        ENSURE(sip_build_response(m, m->reject_status, NULL, NULL, NULL, 0, NULL, NULL, 0, &b) ==
               SIP_OK);
        struct sip_msg *r = NULL;
        ENSURE(sip_parse((const char *)b.data, b.len, b.len, &r, &err) != SIP_OK || r != NULL);
        sip_msg_free(r);
        buf_free(&b);
        sip_msg_free(m);
        return;
    }
    ENSURE(m != NULL && err == NULL);
    ENSURE(m->call_id && m->from_uri && m->to_uri && m->from_tag && m->via_branch);
    ENSURE(m->cseq > 0 && m->cseq_method && strcmp(m->cseq_method, m->method) == 0);
    check_fields(m);
    digest(m);
    if (m->is_request) {
        ENSURE(m->status == 0 && m->ruri && m->max_forwards >= 0 && m->max_forwards <= 255);
        dialplan(m);
        ENSURE(sip_msg_set_received(m, "192.0.2.1", 5060, (size & 1) != 0) == SIP_OK);
        respond(m, 100, NULL, NULL);
        respond(m, 200, "application/sdp", "v=0\r\n");
        respond(m, 401, NULL, NULL);
        respond(m, 486, NULL, NULL);
        if (strcmp(m->method, "INVITE") == 0) dialog(m);
    } else {
        ENSURE(m->status >= 100 && m->status <= 699);
    }
    sip_msg_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run(data, size, 0);
    run(data, size, 512);
    return 0;
}
