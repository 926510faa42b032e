/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * testkeys - counter key names for the C tests, from keys.h, so that the
 * layout is spelled in one place (policy/keys.c) and nowhere in the tests.
 *
 * Interface:
 *   testkeys_counter(prefix, w, customer, sender)
 *       the counter key of window w ('m', 'h' or 'd'): the customer scope
 *       when sender is NULL, else the sender scope. Returns one of a few
 *       rotating static buffers (use it at once, from one thread), or NULL
 *       when w is not a window or the name does not fit.
 */
#ifndef RM_TESTKEYS_H
#define RM_TESTKEYS_H

const char *testkeys_counter(const char *prefix, char w, const char *customer,
                             const char *sender);

#endif
