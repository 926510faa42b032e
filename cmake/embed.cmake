# SPDX-License-Identifier: BSD-2-Clause
# embed.cmake: turn a text file into a C string constant.
# Usage: cmake -DIN=file.lua -DOUT=file.h -DNAME=symbol -P embed.cmake
# The script is compiled into the binary so the daemon never depends on a file
# at run time; hex escapes keep every byte exact whatever the file holds.
file(READ "${IN}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "\\\\x\\1" body "${hex}")
string(LENGTH "${hex}" hexlen)
math(EXPR len "${hexlen} / 2")
file(WRITE "${OUT}" "/* generated from ${IN}; do not edit */\n")
file(APPEND "${OUT}" "static const char ${NAME}[] = \"${body}\";\n")
file(APPEND "${OUT}" "enum { ${NAME}_len = ${len} };\n")
