/*
 * linuxbench.c — the Linux side of `cargo xtask bench --baseline linux`.
 *
 * One static program with one subcommand per microbenchmark (or `all`). It runs
 * as a child of the initramfs /init inside a stock Debian kernel under QEMU with
 * `-icount shift=0,sleep=off`, where the time-stamp counter advances by exactly
 * one tick per guest instruction. Every figure is therefore "guest instructions
 * per operation", read with `rdtsc` around a timed loop and divided by the
 * iteration count. Each figure is printed on the console as
 *
 *     LINUXBENCH <key> <value> <unit>
 *
 * which xtask/src/linux_baseline.rs parses. Extra diagnostic lines start with
 * `LINUXINFO`. See bench/linux/README.md for what each figure means and which
 * moxie benchmark it is compared with.
 *
 * Usage: linuxbench all|cpu|file|<key>... [--dir DIR]
 *   all: every benchmark; cpu: all but the file ones; file: the two file ones;
 *   DIR: a mounted scratch file system for the file benchmarks (default /mnt).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/futex.h>
#include <unistd.h>

/* ---- Helpers ------------------------------------------------------------ */

/* Guest instructions executed so far (TSC == icount under -icount shift=0). */
static inline uint64_t instr_now(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi)::"memory");
	return ((uint64_t)hi << 32) | lo;
}

static const char *file_dir = "/mnt";
static int failures;

static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "LINUXBENCH-ERROR ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, ": %s\n", strerror(errno));
	va_end(ap);
	exit(1);
}

/* Prints one figure: `total` instructions over `ops` operations, rounded. */
static void report(const char *key, uint64_t total, uint64_t ops, const char *unit)
{
	printf("LINUXBENCH %s %llu %s\n", key,
	       (unsigned long long)((total + ops / 2) / ops), unit);
	fflush(stdout);
}

static void info(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("LINUXINFO ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
}

/* Pins the calling task (and so everything it later forks or spawns) to CPU 0. */
static void pin_cpu0(void)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(0, &set);
	if (sched_setaffinity(0, sizeof set, &set) != 0)
		fail("sched_setaffinity");
}

static void write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fail("write");
		}
		buf += n;
		len -= (size_t)n;
	}
}

/* Reads exactly `len` bytes; returns 0 on end of file before the first byte. */
static int read_all(int fd, char *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fail("read");
		}
		if (n == 0) {
			if (got == 0)
				return 0;
			errno = EIO;
			fail("short read");
		}
		got += (size_t)n;
	}
	return 1;
}

static void wait_child(pid_t pid)
{
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			fail("waitpid");
}

/*
 * Nanoseconds CPU 0 has spent idle (idle + iowait) so far, from /proc/timer_list.
 * Under `-icount sleep=off` an idle vCPU makes the virtual clock jump to the next
 * timer deadline, so idle periods show up as large, host-timing-dependent gaps in
 * the TSC; subtracting this gives the instructions actually executed.
 */
static uint64_t idle_ns(void)
{
	FILE *f = fopen("/proc/timer_list", "r");
	char line[256];
	uint64_t sum = 0;
	int cpu = -1, found = 0;
	if (!f)
		fail("open /proc/timer_list");
	while (fgets(line, sizeof line, f)) {
		unsigned long long v;
		char *colon;
		if (sscanf(line, "cpu: %d", &cpu) == 1)
			continue;
		if (cpu != 0)
			continue;
		colon = strchr(line, ':');
		if (!colon)
			continue;
		if ((strstr(line, ".idle_sleeptime") || strstr(line, ".iowait_sleeptime")) &&
		    sscanf(colon + 1, "%llu", &v) == 1) {
			sum += v;
			found++;
		}
	}
	fclose(f);
	if (found != 2) {
		errno = ENOENT;
		fail("idle_sleeptime/iowait_sleeptime for cpu 0 in /proc/timer_list");
	}
	return sum;
}

/* ---- Benchmarks --------------------------------------------------------- */

/*
 * calibrate: no figure, only LINUXINFO lines that help read the others: the
 * cost of the rdtsc pair itself, and how many instructions icount charges for
 * a 4 KiB `rep stosb` and `rep movsb` (TCG counts every iteration of a
 * repeated string instruction, and Linux zeroes and copies pages with them).
 */
static void bench_calibrate(void)
{
	static char a[4096], b[4096];
	uint64_t t0, t1, t2, best_empty = ~0ull, best_stos = ~0ull, best_movs = ~0ull;
	int i;
	for (i = 0; i < 100; i++) {
		void *d = a, *s2 = b;
		size_t c = sizeof a;
		t0 = instr_now();
		t1 = instr_now();
		__asm__ volatile("rep stosb" : "+D"(d), "+c"(c) : "a"(0) : "memory");
		t2 = instr_now();
		if (t1 - t0 < best_empty)
			best_empty = t1 - t0;
		if (t2 - t1 < best_stos)
			best_stos = t2 - t1;
		d = a;
		c = sizeof a;
		t0 = instr_now();
		__asm__ volatile("rep movsb" : "+D"(d), "+S"(s2), "+c"(c) : : "memory");
		t1 = instr_now();
		if (t1 - t0 < best_movs)
			best_movs = t1 - t0;
	}
	info("calibrate rdtsc_pair=%llu rep_stosb_4096=%llu rep_movsb_4096=%llu",
	     (unsigned long long)best_empty, (unsigned long long)best_stos,
	     (unsigned long long)best_movs);
}

/* null_syscall: the cheapest real system call, getppid(2), via raw syscall(2). */
static void bench_null_syscall(void)
{
	const uint64_t warm = 50000, n = 2000000;
	uint64_t t0, t1, i;
	for (i = 0; i < warm; i++)
		syscall(SYS_getppid);
	t0 = instr_now();
	for (i = 0; i < n; i++)
		syscall(SYS_getppid);
	t1 = instr_now();
	report("null_syscall", t1 - t0, n, "instr");
}

/*
 * Round trip of `size`-byte messages between this process and a forked child:
 * the parent writes on `pw`, the child reads the message in full on `cr` and
 * echoes it back on `cw`, the parent reads it in full on `pr`. Both processes run
 * on CPU 0, so each round trip is two writes, two reads, two wake-ups and two
 * context switches. For a pipe pair the four descriptors differ; for a
 * socketpair pw == pr and cr == cw.
 */
static void ping_pong(const char *key, size_t size, uint64_t n, int pw, int pr, int cr, int cw)
{
	static char buf[65536];
	const uint64_t warm = n / 10;
	uint64_t t0 = 0, t1, i;
	pid_t pid;

	memset(buf, 'x', size);
	pid = fork();
	if (pid < 0)
		fail("fork");
	if (pid == 0) {
		close(pw);
		if (pr != pw)
			close(pr);
		while (read_all(cr, buf, size))
			write_all(cw, buf, size);
		_exit(0);
	}
	close(cr);
	if (cw != cr)
		close(cw);
	for (i = 0; i < warm + n; i++) {
		if (i == warm)
			t0 = instr_now();
		write_all(pw, buf, size);
		if (!read_all(pr, buf, size)) {
			errno = EPIPE;
			fail("%s: peer closed", key);
		}
	}
	t1 = instr_now();
	/* End of file on its read side makes the child exit. */
	close(pw);
	if (pr != pw)
		close(pr);
	wait_child(pid);
	report(key, t1 - t0, n, "instr");
}

/* pipe_rt_<size>: ping_pong over two pipes (parent->child, child->parent). */
static void bench_pipe(const char *key, size_t size, uint64_t n)
{
	int to[2], from[2];
	if (pipe(to) || pipe(from))
		fail("pipe");
	ping_pong(key, size, n, to[1], from[0], to[0], from[1]);
}

static void bench_pipe_rt_8(void) { bench_pipe("pipe_rt_8", 8, 80000); }
static void bench_pipe_rt_256(void) { bench_pipe("pipe_rt_256", 256, 80000); }
static void bench_pipe_rt_4096(void) { bench_pipe("pipe_rt_4096", 4096, 40000); }

/* unix_rt_8: ping_pong with 8-byte messages over one AF_UNIX SOCK_STREAM socketpair. */
static void bench_unix_rt_8(void)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		fail("socketpair");
	ping_pong("unix_rt_8", 8, 60000, sv[0], sv[0], sv[1], sv[1]);
}

/*
 * futex_rt: two threads of one process hand a token back and forth through one
 * futex word (0: main thread's turn, 1: partner's turn, 2: partner must exit).
 * Each side stores the new value, FUTEX_WAKEs the other and FUTEX_WAITs until
 * the value changes back, so a round trip is two wakes, two waits and two
 * thread switches on CPU 0.
 */
static int futex_word;

static long futex(int *uaddr, int op, int val)
{
	return syscall(SYS_futex, uaddr, op, val, NULL, NULL, 0);
}

static void *futex_partner(void *arg)
{
	(void)arg;
	for (;;) {
		int v;
		while ((v = __atomic_load_n(&futex_word, __ATOMIC_ACQUIRE)) == 0)
			futex(&futex_word, FUTEX_WAIT_PRIVATE, 0);
		if (v == 2)
			return NULL;
		__atomic_store_n(&futex_word, 0, __ATOMIC_RELEASE);
		futex(&futex_word, FUTEX_WAKE_PRIVATE, 1);
	}
}

static void bench_futex_rt(void)
{
	const uint64_t n = 80000, warm = n / 10;
	uint64_t t0 = 0, t1, i;
	pthread_t th;
	if (pthread_create(&th, NULL, futex_partner, NULL) != 0)
		fail("pthread_create");
	for (i = 0; i < warm + n; i++) {
		if (i == warm)
			t0 = instr_now();
		__atomic_store_n(&futex_word, 1, __ATOMIC_RELEASE);
		futex(&futex_word, FUTEX_WAKE_PRIVATE, 1);
		while (__atomic_load_n(&futex_word, __ATOMIC_ACQUIRE) == 1)
			futex(&futex_word, FUTEX_WAIT_PRIVATE, 1);
	}
	t1 = instr_now();
	__atomic_store_n(&futex_word, 2, __ATOMIC_RELEASE);
	futex(&futex_word, FUTEX_WAKE_PRIVATE, 1);
	pthread_join(th, NULL);
	report("futex_rt", t1 - t0, n, "instr");
}

/* thread_create_join: pthread_create of a thread that returns at once, then pthread_join. */
static void *return_at_once(void *arg)
{
	return arg;
}

static void bench_thread_create_join(void)
{
	const uint64_t n = 4000, warm = 200;
	uint64_t t0 = 0, t1, i;
	for (i = 0; i < warm + n; i++) {
		pthread_t th;
		if (i == warm)
			t0 = instr_now();
		if (pthread_create(&th, NULL, return_at_once, NULL) != 0)
			fail("pthread_create");
		pthread_join(th, NULL);
	}
	t1 = instr_now();
	report("thread_create_join", t1 - t0, n, "instr");
}

/* fork_exit_wait: fork(2), the child calls _exit(0), the parent waitpid(2)s. */
static void bench_fork_exit_wait(void)
{
	const uint64_t n = 4000, warm = 200;
	uint64_t t0 = 0, t1, i;
	for (i = 0; i < warm + n; i++) {
		pid_t pid;
		if (i == warm)
			t0 = instr_now();
		pid = fork();
		if (pid < 0)
			fail("fork");
		if (pid == 0)
			_exit(0);
		wait_child(pid);
	}
	t1 = instr_now();
	report("fork_exit_wait", t1 - t0, n, "instr");
}

/*
 * yield_rt: a forked child spins on sched_yield(2) while the parent calls
 * sched_yield(2) n times; both run on CPU 0, so a yield normally switches to
 * the other process. The child counts its yields in shared memory, and the
 * figure is the time of the parent's loop divided by half the yields both made
 * in it: one round trip = two sched_yield calls (+ normally two context
 * switches). CFS occasionally lets a yielding task run on (a few percent of
 * yields), which this definition absorbs instead of counting a round trip.
 */
static void bench_yield_rt(void)
{
	const uint64_t n = 200000;
	volatile uint64_t *child_yields;
	uint64_t t0, t1, c0, c1, i;
	int ready[2];
	char c = 0;
	pid_t pid;

	child_yields = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (child_yields == MAP_FAILED)
		fail("mmap");
	if (pipe(ready))
		fail("pipe");
	pid = fork();
	if (pid < 0)
		fail("fork");
	if (pid == 0) {
		write_all(ready[1], &c, 1);
		for (;;) {
			sched_yield();
			(*child_yields)++;
		}
	}
	if (!read_all(ready[0], &c, 1))
		fail("yield_rt: child did not start");
	for (i = 0; i < 1000; i++)
		sched_yield();
	c0 = *child_yields;
	t0 = instr_now();
	for (i = 0; i < n; i++)
		sched_yield();
	t1 = instr_now();
	c1 = *child_yields;
	kill(pid, SIGKILL);
	wait_child(pid);
	close(ready[0]);
	close(ready[1]);
	munmap((void *)child_yields, 4096);
	/* CFS does not switch on every yield, so count both sides' yields. */
	info("yield_rt parent_yields=%llu child_yields=%llu", (unsigned long long)n,
	     (unsigned long long)(c1 - c0));
	report("yield_rt", 2 * (t1 - t0), n + (c1 - c0), "instr");
}

/*
 * page_first_touch: one write to each 4 KiB page of a fresh anonymous private
 * mapping, i.e. one demand-zero page fault (allocate + zero + map) per page.
 * Transparent huge pages are disabled for the region with MADV_NOHUGEPAGE so
 * that every page takes its own fault.
 */
static void bench_page_first_touch(void)
{
	const size_t pages = 16384, len = pages * 4096; /* 64 MiB: fits a 256 MiB guest easily */
	uint64_t t0, t1;
	volatile char *p;
	size_t i;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		fail("mmap");
	if (madvise((void *)p, len, MADV_NOHUGEPAGE))
		fail("madvise");
	t0 = instr_now();
	for (i = 0; i < pages; i++)
		p[i * 4096] = 1;
	t1 = instr_now();
	munmap((void *)p, len);
	report("page_first_touch", t1 - t0, pages, "instr");
}

/*
 * file_write_16m_fsync / file_read_16m: 16 MiB written sequentially in 64 KiB
 * write(2)s to a new file on the virtio-blk ext2 file system plus one fsync(2);
 * then the page cache is dropped and the file read back in 64 KiB read(2)s.
 * Time the vCPU spent idle waiting for the disk is subtracted (see idle_ns).
 */
#define FILE_MIB 16
#define FILE_CHUNK 65536

static void drop_caches(void)
{
	int fd;
	sync();
	fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
	if (fd < 0)
		fail("open drop_caches");
	write_all(fd, "3\n", 2);
	close(fd);
}

static void report_busy(const char *key, uint64_t t0, uint64_t t1, uint64_t i0, uint64_t i1)
{
	uint64_t elapsed = t1 - t0, idle = i1 - i0;
	uint64_t busy = idle < elapsed ? elapsed - idle : 0;
	info("%s elapsed=%llu idle_ns=%llu busy=%llu", key, (unsigned long long)elapsed,
	     (unsigned long long)idle, (unsigned long long)busy);
	report(key, busy, FILE_MIB, "instr/MiB");
}

static void bench_file(void)
{
	static char buf[FILE_CHUNK];
	char path[512];
	uint64_t t0, t1, i0, i1, total = 0;
	int fd, i;

	snprintf(path, sizeof path, "%s/linuxbench.dat", file_dir);
	for (i = 0; i < FILE_CHUNK; i++)
		buf[i] = (char)(i * 7 + 1);
	unlink(path);
	drop_caches();

	i0 = idle_ns();
	t0 = instr_now();
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		fail("open %s", path);
	for (i = 0; i < FILE_MIB * (1 << 20) / FILE_CHUNK; i++)
		write_all(fd, buf, FILE_CHUNK);
	if (fsync(fd))
		fail("fsync");
	t1 = instr_now();
	i1 = idle_ns();
	close(fd);
	report_busy("file_write_16m_fsync", t0, t1, i0, i1);

	drop_caches();

	i0 = idle_ns();
	t0 = instr_now();
	fd = open(path, O_RDONLY);
	if (fd < 0)
		fail("open %s", path);
	for (;;) {
		ssize_t n = read(fd, buf, FILE_CHUNK);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fail("read");
		}
		if (n == 0)
			break;
		total += (uint64_t)n;
	}
	t1 = instr_now();
	i1 = idle_ns();
	close(fd);
	if (total != (uint64_t)FILE_MIB << 20) {
		errno = EIO;
		fail("file_read_16m: read %llu bytes", (unsigned long long)total);
	}
	report_busy("file_read_16m", t0, t1, i0, i1);
	unlink(path);
}

/* ---- Driver ------------------------------------------------------------- */

struct bench {
	const char *name;
	void (*fn)(void);
};

static const struct bench benches[] = {
	{ "calibrate", bench_calibrate },
	{ "null_syscall", bench_null_syscall },
	{ "pipe_rt_8", bench_pipe_rt_8 },
	{ "pipe_rt_256", bench_pipe_rt_256 },
	{ "pipe_rt_4096", bench_pipe_rt_4096 },
	{ "futex_rt", bench_futex_rt },
	{ "thread_create_join", bench_thread_create_join },
	{ "unix_rt_8", bench_unix_rt_8 },
	{ "fork_exit_wait", bench_fork_exit_wait },
	{ "yield_rt", bench_yield_rt },
	{ "page_first_touch", bench_page_first_touch },
	/* One run produces both file figures. */
	{ "file", bench_file },
};

#define NBENCH (sizeof benches / sizeof benches[0])

/* Runs one benchmark in its own process so a crash in one cannot hide the rest. */
static void run_one(const struct bench *b)
{
	uint64_t t0 = instr_now();
	pid_t pid = fork();
	int status;
	if (pid < 0)
		fail("fork");
	if (pid == 0) {
		b->fn();
		fflush(stdout);
		_exit(0);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			fail("waitpid");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "LINUXBENCH-ERROR %s failed (status 0x%x)\n", b->name, status);
		failures++;
	}
	info("%s took %llu TSC ticks in all (fork to exit, idle included)", b->name,
	     (unsigned long long)(instr_now() - t0));
}

int main(int argc, char **argv)
{
	int i, ran = 0;
	size_t j;

	setvbuf(stdout, NULL, _IOLBF, 0);
	pin_cpu0();
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
			file_dir = argv[++i];
			continue;
		}
		for (j = 0; j < NBENCH; j++) {
			int is_file = strcmp(benches[j].name, "file") == 0;
			if (strcmp(argv[i], "all") == 0 || strcmp(argv[i], benches[j].name) == 0 ||
			    (strcmp(argv[i], "cpu") == 0 && !is_file) ||
			    (strncmp(argv[i], "file_", 5) == 0 && is_file)) {
				run_one(&benches[j]);
				ran++;
			}
		}
	}
	if (ran == 0) {
		fprintf(stderr, "usage: %s all|cpu|file|<benchmark>... [--dir DIR]\n", argv[0]);
		return 2;
	}
	return failures ? 1 : 0;
}
