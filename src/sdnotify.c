#include "config.h"

#include "sdnotify.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

void sdnotify(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (getenv("NOTIFY_SOCKET") == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
#ifdef HAVE_LIBSYSTEMD
	sd_notify(0, msg);
#else
	{
		/* The protocol is one datagram to the socket named in $NOTIFY_SOCKET; a name that
		 * starts with '@' is in the abstract namespace. */
		const char *path = getenv("NOTIFY_SOCKET");
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		size_t n = strlen(path);
		socklen_t len;
		int fd;

		if (n == 0 || n >= sizeof(sa.sun_path) || (path[0] != '/' && path[0] != '@'))
			return;
		memcpy(sa.sun_path, path, n);
		if (path[0] == '@')
			sa.sun_path[0] = '\0';
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
		fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return;
		sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa, len);
		close(fd);
	}
#endif
}
