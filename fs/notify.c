/* fs/notify.c — poll wake-ups. Resizes queue the poll handles of waiting
 * readers here and one thread sends the notifications, so no request
 * handler ever talks to the kernel about another request. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "instarfs.h"

struct pending {
	struct pending *next;
	struct fuse_pollhandle *ph;
};

static pthread_mutex_t nlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ncond = PTHREAD_COND_INITIALIZER;
static struct pending *queue;
static bool stopping;
static bool running;
static pthread_t nthread;

void ifs_notify_queue(struct fuse_pollhandle *ph)
{
	struct pending *p = malloc(sizeof(*p));

	if (!p) {
		/* Better a reader that waits for its timeout than a leak. */
		fuse_pollhandle_destroy(ph);
		return;
	}
	p->ph = ph;
	pthread_mutex_lock(&nlock);
	p->next = queue;
	queue = p;
	pthread_cond_signal(&ncond);
	pthread_mutex_unlock(&nlock);
}

static void *notify_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&nlock);
	for (;;) {
		struct pending *p;

		while (!queue && !stopping)
			pthread_cond_wait(&ncond, &nlock);
		if (!queue && stopping)
			break;
		p = queue;
		queue = NULL;
		pthread_mutex_unlock(&nlock);
		while (p) {
			struct pending *next = p->next;

			fuse_lowlevel_notify_poll(p->ph);
			fuse_pollhandle_destroy(p->ph);
			free(p);
			p = next;
		}
		pthread_mutex_lock(&nlock);
	}
	pthread_mutex_unlock(&nlock);
	return NULL;
}

int ifs_notify_start(void)
{
	int r = pthread_create(&nthread, NULL, notify_main, NULL);

	if (r)
		return -r;
	running = true;
	return 0;
}

void ifs_notify_stop(void)
{
	if (!running)
		return;
	pthread_mutex_lock(&nlock);
	stopping = true;
	pthread_cond_signal(&ncond);
	pthread_mutex_unlock(&nlock);
	pthread_join(nthread, NULL);
	running = false;
}
