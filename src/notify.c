#include "config.h"

#include "notify.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "mailbox.h"
#include "message.h"

static int build(const struct config *cfg, const struct channel *ch, const struct mail_template *t,
                 const struct alert *a, char *const *to, size_t nto, bool fanout,
                 struct notification *n, struct err *e)
{
	char *const *rcpt_in = nto > 0 ? to : ch->to;
	size_t nrcpt = nto > 0 ? nto : ch->nto;
	struct mailbox from = {0};
	struct mailbox *mto = NULL;
	struct message_in in = {0};
	struct ynode *data = NULL;
	char *text = NULL, *html = NULL;
	int rc = -1;

	memset(n, 0, sizeof(*n));
	buf_init(&n->message);
	if (mailbox_parse(ch->from ? ch->from : cfg->from, &from, e) < 0) {
		err_prefix(e, "from");
		goto out;
	}
	mto = xcalloc(nrcpt, sizeof(*mto));
	n->rcpt = xcalloc(nrcpt, sizeof(*n->rcpt));
	for (size_t i = 0; i < nrcpt; i++) {
		if (mailbox_parse(rcpt_in[i], &mto[i], e) < 0) {
			err_prefix(e, "recipient '%s'", rcpt_in[i]);
			goto out;
		}
		n->rcpt[n->nrcpt++] = xstrdup(mto[i].addr);
	}
	data = alert_template_data(a, ch->name);
	if (mail_template_render(t, data, &n->subject, &text, &html, e) < 0) {
		err_prefix(e, "template '%s'", ch->template);
		goto out;
	}
	in.from = &from;
	in.to = mto;
	in.nto = nrcpt;
	in.subject = n->subject;
	in.text = text;
	in.html = html;
	in.alert_id = a->id;
	in.date = time(NULL);
	in.id_channel = fanout ? ch->name : NULL;
	if (message_compose(&in, &n->message, e) < 0)
		goto out;
	n->mail_from = xstrdup(from.addr);
	rc = 0;
out:
	mailbox_free(&from);
	for (size_t i = 0; mto != NULL && i < nrcpt; i++)
		mailbox_free(&mto[i]);
	free(mto);
	free(text);
	free(html);
	ynode_free(data);
	if (rc < 0)
		notify_free(n);
	return rc;
}

int notify_build(const struct config *cfg, const struct channel *ch, const struct mail_template *t,
                 const struct alert *a, char *const *to, size_t nto, struct notification *n,
                 struct err *e)
{
	return build(cfg, ch, t, a, to, nto, false, n, e);
}

int notify_build_fanout(const struct config *cfg, const struct channel *ch,
                        const struct mail_template *t, const struct alert *a,
                        struct notification *n, struct err *e)
{
	return build(cfg, ch, t, a, NULL, 0, true, n, e);
}

void notify_free(struct notification *n)
{
	buf_free(&n->message);
	free(n->mail_from);
	for (size_t i = 0; i < n->nrcpt; i++)
		free(n->rcpt[i]);
	free(n->rcpt);
	free(n->subject);
	memset(n, 0, sizeof(*n));
}
