/*
 * schema.c - the store's migrations, oldest first. Forward-only: never edit
 * a released row; add a new one. Each later issue appends its tables here.
 */
#include "store.h"

const struct lucy_migration lucy_migrations[] = {
    {1, "core",
     "CREATE TABLE store_probe (id INTEGER PRIMARY KEY, written_at_ms INTEGER NOT NULL);"
     "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);"},
};
const int lucy_migrations_count = sizeof lucy_migrations / sizeof lucy_migrations[0];
