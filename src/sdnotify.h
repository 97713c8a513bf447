/* Readiness and status for systemd (the sd_notify protocol), a no-op without $NOTIFY_SOCKET. */
#ifndef ALERTMAIL_SDNOTIFY_H
#define ALERTMAIL_SDNOTIFY_H

/* Sends one notification, e.g. "READY=1" or "STATUS=3 in flight". */
void sdnotify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
