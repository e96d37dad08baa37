/* Unit tests for src/proto/call_token.c: the room invitations the media node checks (audit C1). */
#include "test.h"

#include "proto/call_token.h"

#include <string.h>

#define S "shared-secret"

static enum call_token_status check(const char *tok, int64_t dev, const char *room, int64_t user,
                                    int64_t now)
{
    return call_token_check(S, strlen(S), tok, strlen(tok), dev, room, strlen(room), user, now);
}

TEST(call_token_binds_tenant_room_user_and_expiry)
{
    char tok[CALL_TOKEN_MAX];
    size_t n = call_token_make(S, strlen(S), 7, "101", 3, 3, 1000, tok);
    CHECK(n > 0);
    CHECK_INT(n, strlen(tok));
    CHECK_INT(n, 4 + 1 + 43);
    CHECK_MEM(tok, "1000.", 5);
    CHECK_INT(check(tok, 7, "101", 3, 999), CALL_TOKEN_OK);
    CHECK_INT(check(tok, 7, "101", 3, 1000), CALL_TOKEN_EXPIRED);
    CHECK_INT(check(tok, 8, "101", 3, 999), CALL_TOKEN_BAD);
    CHECK_INT(check(tok, 7, "102", 3, 999), CALL_TOKEN_BAD);
    CHECK_INT(check(tok, 7, "10", 3, 999), CALL_TOKEN_BAD);
    CHECK_INT(check(tok, 7, "101", 4, 999), CALL_TOKEN_BAD);
    CHECK_INT(call_token_check("other", 5, tok, n, 7, "101", 3, 3, 999), CALL_TOKEN_BAD);
    /* a later expiry written over the token's does not verify */
    char forged[CALL_TOKEN_MAX];
    memcpy(forged, tok, n + 1);
    forged[0] = '9';
    CHECK_INT(check(forged, 7, "101", 3, 999), CALL_TOKEN_BAD);
    /* one signature character changed */
    memcpy(forged, tok, n + 1);
    forged[n - 1] = forged[n - 1] == 'A' ? 'B' : 'A';
    CHECK_INT(check(forged, 7, "101", 3, 999), CALL_TOKEN_BAD);
}

TEST(call_token_malformed)
{
    const char *bad[] = {"",
                         "1000",
                         "1000.",
                         ".abc",
                         "x1000.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                         "1000.aaaa",
                         "1000,aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                         "1000000000000000000000.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK_INT(check(bad[i], 7, "101", 3, 0), CALL_TOKEN_MALFORMED);
    CHECK_INT(call_token_check(S, strlen(S), NULL, 0, 7, "101", 3, 3, 0), CALL_TOKEN_MALFORMED);
    char tok[CALL_TOKEN_MAX];
    char room[200];
    memset(room, 'r', sizeof room);
    CHECK_INT(call_token_make(S, strlen(S), 7, room, sizeof room, 3, 1000, tok), 0);
    CHECK_STR(call_token_status_text(CALL_TOKEN_EXPIRED), "expired");
}
