/* Baseline: poll N Modbus TCP devices with libmodbus directly, from C.
 * One thread, round-robin, blocking calls: the CPU-per-transaction ceiling.
 * Usage: modbus_poll DEVICES SECONDS REGISTERS PORT[,PORT...] [READS]
 * With READS, exactly READS reads (round-robin) instead of SECONDS of them: the instruction-count
 * measure (modbus_callgrind.py) runs it under callgrind with READS = 0 and 10,000.
 * Prints one JSON line: {"client":"c-libmodbus","devices":N,"tx":T,"errors":E,"wall_s":W,"cpu_s":C}
 * With POLL_THREADED set, an idle second thread is started first. The reads are the same, but glibc then
 * takes its multi-threaded path in every cancellable call libmodbus makes (select, recv, send each enable and
 * disable asynchronous cancellation): the floor for any client in a process with more than one thread, as
 * every Swift program is (modbus_callgrind.py prints both).
 */
#include <errno.h>
#include <pthread.h>
#include <modbus.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *idle(void *arg) {
    (void)arg;
    for (;;) pause();
    return NULL;
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: %s DEVICES SECONDS REGISTERS PORTS\n", argv[0]); return 2; }
    if (getenv("POLL_THREADED")) {
        pthread_t t;
        if (pthread_create(&t, NULL, idle, NULL) != 0) { fprintf(stderr, "pthread_create failed\n"); return 1; }
    }
    int n = atoi(argv[1]);
    double seconds = atof(argv[2]);
    int regs = atoi(argv[3]);
    int ports[64], nports = 0;
    for (char *p = strtok(argv[4], ","); p && nports < 64; p = strtok(NULL, ",")) ports[nports++] = atoi(p);
    modbus_t **ctx = calloc(n, sizeof(modbus_t *));
    for (int i = 0; i < n; i++) {
        char port[16];
        snprintf(port, sizeof port, "%d", ports[i % nports]);
        ctx[i] = modbus_new_tcp_pi("127.0.0.1", port);
        modbus_set_slave(ctx[i], 1);
        if (modbus_connect(ctx[i]) == -1) { fprintf(stderr, "connect: %s\n", modbus_strerror(errno)); return 1; }
    }
    uint16_t buf[125];
    long tx = 0, errors = 0;
    long reads = argc > 5 ? atol(argv[5]) : -1;
    double c0 = cpu_s(), t0 = now_s(), deadline = t0 + seconds;
    if (reads >= 0) {
        for (long k = 0; k < reads; k++) {
            if (modbus_read_registers(ctx[k % n], 0, regs, buf) == regs) tx++; else errors++;
        }
    } else while (now_s() < deadline) {
        for (int i = 0; i < n; i++) {
            if (modbus_read_registers(ctx[i], 0, regs, buf) == regs) tx++; else errors++;
        }
    }
    double wall = now_s() - t0, cpu = cpu_s() - c0;
    printf("{\"client\":\"c-libmodbus\",\"devices\":%d,\"tx\":%ld,\"errors\":%ld,\"wall_s\":%.3f,\"cpu_s\":%.3f}\n", n, tx, errors, wall, cpu);
    for (int i = 0; i < n; i++) { modbus_close(ctx[i]); modbus_free(ctx[i]); }
    return 0;
}
