/*
 * dl.h - a system library lucy opens when it first needs it, not at start.
 *
 * A library linked into the binary is mapped, relocated and initialised in
 * every lucy process, used or not. Two of lucy's are used only by some
 * installations: libcurl, which brings about thirty libraries of its own
 * (TLS, Kerberos, LDAP, SSH ...; ~2 MB resident) and serves only a lucy
 * that talks to another server (Qdrant, an LLM, the Graph API), and
 * libsystemd (~0.8 MB with its five), which serves only a lucy run by
 * systemd. Opening them on first use keeps an idle lucy on the embedded
 * default small (issue 13; docs/benchmarks.md "Idle memory").
 *
 * The caller owns a table (a struct of function pointers) and a list of
 * rows naming each function and where its pointer goes; lucy_dl_open()
 * fills the table from the library. The library is never closed.
 */
#ifndef LUCY_DL_H
#define LUCY_DL_H

#include <stddef.h>

/* One function to find: its symbol name and the offset of its pointer in
 * the caller's table (offsetof). */
struct lucy_dl_symbol {
    const char *name;
    size_t offset;
};

/* Opens the library soname (as its Debian runtime package installs it,
 * e.g. "libcurl.so.4"; dlopen RTLD_NOW | RTLD_LOCAL, never closed) and
 * stores the address of each of symbols[0..n) in table at its offset.
 * Returns 0, or LUCY_EUNAVAIL with err (errlen bytes) saying why: the
 * loader's message ("libcurl.so.4: cannot open shared object file ...")
 * or the first missing symbol. On failure the table is left as it was.
 * Not thread-safe for one table: call it once (pthread_once), as
 * src/http/libcurl.c does. */
int lucy_dl_open(const char *soname, const struct lucy_dl_symbol *symbols, size_t n, void *table,
                 char *err, size_t errlen);

#endif
