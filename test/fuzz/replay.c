/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * replay - runs a fuzz target over files without libFuzzer, so that any
 * compiler (and the ASan/UBSan build of scripts/sanitize.sh) replays the
 * committed corpus, crash regressions included, on every test run.
 *
 *   fuzz_TARGET_replay FILE|DIR...
 *
 * A directory is read one level deep, in name order. A broken invariant in the
 * target aborts, so the test fails on the input that broke it; the name of each
 * input is printed before it runs.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0, n;

    if (fp == NULL) {
        perror(path);
        return -1;
    }
    do {
        if (len == cap) {
            cap = cap ? 2 * cap : 4096;
            if ((buf = realloc(buf, cap)) == NULL) {
                fclose(fp);
                return -1;
            }
        }
        n = fread(buf + len, 1, cap - len, fp);
        len += n;
    } while (n > 0);
    fclose(fp);
    printf("replay: %s (%zu bytes)\n", path, len);
    fflush(stdout);
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

int main(int argc, char **argv)
{
    int files = 0, bad = 0;

    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            perror(argv[i]);
            bad++;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            bad += run_file(argv[i]) != 0;
            files++;
            continue;
        }
        struct dirent **list;
        int n = scandir(argv[i], &list, NULL, by_name);
        if (n < 0) {
            perror(argv[i]);
            bad++;
            continue;
        }
        for (int j = 0; j < n; j++) {
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", argv[i], list[j]->d_name);
            if (list[j]->d_name[0] != '.' && stat(path, &st) == 0 &&
                S_ISREG(st.st_mode)) {
                bad += run_file(path) != 0;
                files++;
            }
            free(list[j]);
        }
        free(list);
    }
    printf("replay: %d inputs, %d unreadable\n", files, bad);
    return bad == 0 && files > 0 ? 0 : 1;
}
