/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * keyname - prints one Redis key name as policy/keys.h builds it, so that
 * the shell tests of relaymilter-ctl follow the key layout wherever it is
 * changed:
 *   keyname PREFIX customer W CUSTOMER          a customer's counter
 *   keyname PREFIX sender W CUSTOMER SENDER     a sender's counter
 *   keyname PREFIX limits CUSTOMER | sasl | events
 * W is a window tag of limits.h (m, h, d). Exit 2 on bad usage.
 */
#include <stdio.h>
#include <string.h>

#include "keys.h"
#include "limits.h"

static int window(const char *tag)
{
    for (int w = 0; w < LIM_NWINDOWS; w++)
        if (strcmp(tag, lim_window_tag[w]) == 0)
            return w;
    return -1;
}

int main(int argc, char **argv)
{
    char key[2048];
    int n = -1, w = argc > 3 ? window(argv[3]) : -1;

    if (argc == 5 && strcmp(argv[2], "customer") == 0 && w >= 0)
        n = keys_counter(key, sizeof(key), argv[1], KEYS_CUSTOMER, w, argv[4], NULL);
    else if (argc == 6 && strcmp(argv[2], "sender") == 0 && w >= 0)
        n = keys_counter(key, sizeof(key), argv[1], KEYS_SENDER, w, argv[4], argv[5]);
    else if (argc == 4 && strcmp(argv[2], "limits") == 0)
        n = keys_limits(key, sizeof(key), argv[1], argv[3]);
    else if (argc == 3 && strcmp(argv[2], "sasl") == 0)
        n = keys_sasl(key, sizeof(key), argv[1]);
    else if (argc == 3 && strcmp(argv[2], "events") == 0)
        n = keys_events(key, sizeof(key), argv[1]);
    if (n < 0) {
        fputs("usage: keyname PREFIX customer W CUSTOMER | sender W CUSTOMER SENDER | "
              "limits CUSTOMER | sasl | events\n",
              stderr);
        return 2;
    }
    puts(key);
    return 0;
}
