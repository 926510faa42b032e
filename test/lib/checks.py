# SPDX-License-Identifier: BSD-2-Clause
"""checks - the ok/FAIL lines of a test script and its closing line.

    check = Checks("test_name")
    check("what must hold", condition, detail_shown_when_it_does_not)
    check.say("a note")
    sys.exit(check.finish())       # prints "N passed, N failed"; 1 if any failed
"""


class Checks:
    def __init__(self, name):
        self.name, self.passes, self.fails = name, 0, 0

    def say(self, *a):
        print(self.name + ":", *a, flush=True)

    def __call__(self, what, cond, detail=""):
        if cond:
            self.passes += 1
            print("ok:", what, flush=True)
        else:
            self.fails += 1
            print("FAIL:", what, flush=True)
            if detail:
                print("    " + str(detail).rstrip().replace("\n", "\n    "), flush=True)
        return cond

    def finish(self):
        print("%d passed, %d failed" % (self.passes, self.fails), flush=True)
        return 1 if self.fails else 0
