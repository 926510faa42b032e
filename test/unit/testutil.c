/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * testutil - temporary config files and the suite runner; see testutil.h.
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

char *tu_write_temp(const char *text)
{
    const char *dir = getenv("TMPDIR");
    char *path;
    size_t len = strlen(text);

    if (dir == NULL || *dir == '\0')
        dir = "/tmp";
    path = malloc(strlen(dir) + 32);
    ck_assert_ptr_nonnull(path);
    sprintf(path, "%s/rm-unit-XXXXXX", dir);
    int fd = mkstemp(path);
    ck_assert_msg(fd >= 0, "mkstemp in %s failed", dir);
    ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

struct rm_config *tu_load_path(const char *text, char *err, size_t errlen, char *path,
                               size_t pathlen)
{
    char *p = tu_write_temp(text);

    err[0] = '\0';
    struct rm_config *cfg = cfg_load(p, err, errlen);
    unlink(p);
    if (path != NULL)
        snprintf(path, pathlen, "%s", p);
    free(p);
    return cfg;
}

struct rm_config *tu_load(const char *text, char *err, size_t errlen)
{
    return tu_load_path(text, err, errlen, NULL, 0);
}

int tu_run(Suite *s)
{
    SRunner *sr = srunner_create(s);

    /* Decisions are logged; keep the test output to what matters. */
    log_open("relaymilter-unit", 1);
    log_set_level(getenv("RM_UNIT_LOG") ? LOG_LVL_DEBUG : LOG_LVL_ERROR + 1);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
