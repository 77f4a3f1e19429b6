/*
 * Help generated from the component registry and the config tables: `tracehouse --help`
 * lists the built-in components, `tracehouse help TYPE` shows one component's keys, and
 * `tracehouse docs` writes the Markdown reference kept in docs/components.md.
 */
#ifndef TH_HELP_H
#define TH_HELP_H

#include <stdio.h>

#include "th/component.h"

/** List every built-in component: kind, type (and alias), stability, description. */
void th_help_components(FILE *out);

/**
 * Print the config keys of every component whose type (or alias) is @p type.
 * @return 0, or TH_ENOENT when no such component is built in (a message is printed).
 */
int th_help_component(FILE *out, const char *type);

/** Print the Markdown reference of every component's config keys. */
void th_help_markdown(FILE *out);

/** @return the name of a config type for help text ("duration", "string list", ...). */
const char *th_cfg_type_name(enum th_cfg_type t);

#endif
