/* JSON output: a YAML tree (an alert, a command's report) written so that any JSON parser,
 * and ytree_parse, reads it back. */
#ifndef ALERTMAIL_JSON_H
#define ALERTMAIL_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "yamltree.h"

/* Appends s (len bytes, NULs allowed) as a JSON string: quotes, backslashes and control
 * characters escaped, each ill-formed UTF-8 sequence replaced by one U+FFFD. */
void json_add_string(struct buf *out, const char *s, size_t len);

/* The longest mapping key, in characters of its JSON text with the quotes, that ytree_parse
 * reads back: libyaml takes a key only when the ':' after it comes within 1024 characters
 * (YAML's limit on implicit keys), in JSON too. */
#define JSON_KEY_MAX 1024
/* The characters (not bytes) that json_add_string() writes for s, quotes included. */
size_t json_string_chars(const char *s, size_t len);

/* Appends n as JSON: mappings as objects, lists as arrays, quoted scalars as strings. A plain
 * scalar that the YAML core schema reads as null or a boolean (~, Null, TRUE...) becomes null,
 * true or false; one it reads as a number becomes a JSON number when JSON can write it with the
 * same text (0123, +1, .5, 0x1f, .inf stay strings); any other scalar is a string. pretty: one
 * member per line, indented by two spaces; else all on one line. No line break at the end. */
void json_add_node(struct buf *out, const struct ynode *n, bool pretty);

#endif
