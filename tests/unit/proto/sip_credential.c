/* Unit tests for src/proto/sip_credential.c: a token session's SIP password (audit H2). */
#include "test.h"

#include "proto/sip_credential.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#define KEY "AbCdEfGhIjKlMnOpQrStUvWxYz012345"

static void md5_hex(const char *s, char out[33])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    EVP_Digest(s, strlen(s), md, &n, EVP_md5(), NULL);
    for (unsigned i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* A qop=auth digest for REGISTER by user 0000071 with password, as JsSIP makes it. */
static void digest(struct sip_auth *a, char response[33], const char *password)
{
    static char ha1[33], ha2[33];
    char buf[512];
    snprintf(buf, sizeof buf, "0000071:ccomet:%s", password);
    md5_hex(buf, ha1);
    md5_hex("REGISTER:sip:ccomet", ha2);
    snprintf(buf, sizeof buf, "%s:n0nce:00000001:c0nce:auth:%s", ha1, ha2);
    md5_hex(buf, response);
    memset(a, 0, sizeof *a);
    a->present = true;
    a->username = "0000071";
    a->realm = "ccomet";
    a->nonce = "n0nce";
    a->uri = "sip:ccomet";
    a->qop = "auth";
    a->nc = "00000001";
    a->cnonce = "c0nce";
    a->response = response;
}

TEST(sip_credential_expiry_is_the_tokens_capped_and_whole_minutes)
{
    CHECK_INT(sip_credential_expiry(1000, true, 1499, 3600), 1440);
    CHECK_INT(sip_credential_expiry(1000, false, 0, 3600), 4560); /* 4600 rounded down */
    CHECK_INT(sip_credential_expiry(1000, true, 999999, 3600), 4560);
    CHECK_INT(sip_credential_expiry(1000, true, 1030, 3600), 1020);
    CHECK_INT(sip_credential_expiry(1000, true, 1019, 3600), 0); /* 960 is not after now */
    CHECK_INT(sip_credential_expiry(1000, true, 900, 3600), 0);
    CHECK_INT(sip_credential_expiry(1000, false, 0, 0), 0);
}

TEST(sip_credential_binds_key_tenant_user_and_expiry)
{
    char a[SIP_CREDENTIAL_LEN + 1], b[SIP_CREDENTIAL_LEN + 1];
    sip_credential_make(KEY, strlen(KEY), 0, 71, 1440, a);
    CHECK_INT(strlen(a), SIP_CREDENTIAL_LEN);
    CHECK(strstr(a, KEY) == NULL);
    sip_credential_make(KEY, strlen(KEY), 0, 71, 1440, b);
    CHECK_STR(a, b);
    sip_credential_make(KEY, strlen(KEY), 0, 71, 1500, b);
    CHECK(strcmp(a, b) != 0);
    sip_credential_make(KEY, strlen(KEY), 1, 71, 1440, b);
    CHECK(strcmp(a, b) != 0);
    sip_credential_make(KEY, strlen(KEY), 0, 72, 1440, b);
    CHECK(strcmp(a, b) != 0);
    sip_credential_make("other", 5, 0, 71, 1440, b);
    CHECK(strcmp(a, b) != 0);
}

TEST(sip_credential_match_finds_key_or_live_credential)
{
    struct sip_auth au;
    char resp[33], pw[80];
    /* the permanent key (a hash login's session) */
    digest(&au, resp, KEY);
    CHECK_INT(
        sip_credential_match(&au, "REGISTER", KEY, strlen(KEY), 0, 71, 1000, 3600, pw, sizeof pw),
        0);
    CHECK_STR(pw, KEY);
    /* a credential of expiry 1440: matched until 1440, refused from then on */
    char cred[SIP_CREDENTIAL_LEN + 1];
    sip_credential_make(KEY, strlen(KEY), 0, 71, 1440, cred);
    digest(&au, resp, cred);
    CHECK_INT(
        sip_credential_match(&au, "REGISTER", KEY, strlen(KEY), 0, 71, 1000, 3600, pw, sizeof pw),
        1440);
    CHECK_STR(pw, cred);
    CHECK_INT(
        sip_credential_match(&au, "REGISTER", KEY, strlen(KEY), 0, 71, 1439, 3600, pw, sizeof pw),
        1440);
    CHECK_INT(
        sip_credential_match(&au, "REGISTER", KEY, strlen(KEY), 0, 71, 1440, 3600, pw, sizeof pw),
        -1);
    CHECK_STR(pw, KEY);
    /* another method, another user's key, another tenant: no match */
    CHECK_INT(
        sip_credential_match(&au, "INVITE", KEY, strlen(KEY), 0, 71, 1000, 3600, pw, sizeof pw),
        -1);
    CHECK_INT(sip_credential_match(&au, "REGISTER", "k2", 2, 0, 71, 1000, 3600, pw, sizeof pw), -1);
    CHECK_INT(
        sip_credential_match(&au, "REGISTER", KEY, strlen(KEY), 1, 71, 1000, 3600, pw, sizeof pw),
        -1);
    /* an expiry beyond now + ttl was never handed out, so it is not looked for */
    CHECK_INT(
        sip_credential_match(&au, "REGISTER", KEY, strlen(KEY), 0, 71, 1000, 300, pw, sizeof pw),
        -1);
    /* a wrong password */
    digest(&au, resp, "guess");
    CHECK_INT(
        sip_credential_match(&au, "REGISTER", KEY, strlen(KEY), 0, 71, 1000, 3600, pw, sizeof pw),
        -1);
    /* too small an output */
    CHECK_INT(sip_credential_match(&au, "REGISTER", KEY, strlen(KEY), 0, 71, 1000, 3600, pw, 8),
              -1);
}
